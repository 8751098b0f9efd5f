export { Opsmeter } from "./client.js";
export type { FlagsCallback, OpsmeterOptions, RecordInput, Stats, WorkspaceFlags } from "./client.js";
export { anthropicTokens, openaiTokens, wrapAnthropic, wrapOpenAI } from "./wrappers.js";
export type { Attribution, Tokens } from "./wrappers.js";
export { BudgetExceededError, RuntimePolicy, decide, snapshotFrom } from "./enforcement.js";
export type { Decision, PolicySnapshot, RuntimeAction, RuntimeActions } from "./enforcement.js";
export const VERSION = "0.1.0";
