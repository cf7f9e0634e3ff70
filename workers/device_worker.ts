/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

/**
 * Device worker entry point: a thin shell that hosts one device model in a
 * {@linkcode DeviceRuntime}.
 *
 * @module
 */

import { type DeviceControl, DeviceRuntime } from "../src/machine/device_runtime.ts";

let runtime: DeviceRuntime | undefined;

self.onmessage = async (event: MessageEvent<DeviceControl>) => {
  const message = event.data;
  if (typeof message !== "string" && message.type === "init") {
    try {
      runtime = new DeviceRuntime(message, self);
    } catch (error) {
      self.postMessage({
        type: "fatal",
        message: `Cannot start device ${message.id}: ${(error as Error).message}`,
      });
    }
  } else if (typeof message !== "string" && message.type === "query-permissions") {
    // What this worker may do, as Deno sees it (narrowed worker permissions).
    try {
      const states = message.descriptors.map((d) => Deno.permissions.querySync(d).state);
      self.postMessage({ type: "permissions", states });
    } catch (error) {
      self.postMessage({ type: "permissions", states: [], error: (error as Error).message });
    }
  } else if (typeof message !== "string" && message.type === "shutdown") {
    await runtime?.shutdown();
    self.postMessage({ type: "stopped" });
    self.close();
  } else {
    runtime?.onControl(message);
  }
};
