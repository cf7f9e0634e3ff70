/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

/**
 * Guest agent ("vCPU") entry point: a thin shell that runs one guest program.
 *
 * @module
 */

import { type AgentInit, runAgent } from "../src/machine/agent_runtime.ts";

self.onmessage = async (event: MessageEvent<AgentInit>) => {
  self.onmessage = null;
  await runAgent(event.data, self);
  self.close();
};
