import { createContext, useContext } from "react";
import type { Session } from "./api/client";
import type { DataMode } from "./api/types";

export interface Workspace {
  session: Session;
  canChange: boolean;
  dataMode: DataMode;
  setDataMode: (mode: DataMode) => void;
  timeZone: string;
}

export const WorkspaceContext = createContext<Workspace | null>(null);

export function useWorkspace(): Workspace {
  const value = useContext(WorkspaceContext);
  if (value === null) throw new Error("useWorkspace outside a signed-in page");
  return value;
}
