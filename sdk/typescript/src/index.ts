export { Opsmeter } from "./client.js";
export type { FlagsCallback, OpsmeterOptions, RecordInput, Stats, WorkspaceFlags } from "./client.js";
export { anthropicTokens, openaiResponseTokens, openaiTokens, wrapAnthropic, wrapOpenAI } from "./wrappers.js";
export type { Attribution, Tokens } from "./wrappers.js";
export { BudgetExceededError, RuntimePolicy, callScope, decide, normalizeModel, snapshotFrom } from "./enforcement.js";
export type {
  BudgetFlags,
  BudgetHit,
  CallScope,
  Decision,
  PolicySnapshot,
  RuntimeAction,
  RuntimeActions,
  ScopedBudget,
} from "./enforcement.js";
export const VERSION = "0.1.0";
