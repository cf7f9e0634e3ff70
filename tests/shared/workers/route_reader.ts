// Test worker: reads the route table through a RouteReader and reports it.
import { RouteReader } from "../../../src/shared/route_table.ts";

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<{ buffer: SharedArrayBuffer }>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = (event) => {
  const reader = new RouteReader(new Int32Array(event.data.buffer));
  scope.postMessage({ type: "reading" });
  scope.postMessage({ type: "routes", routes: [...reader.routes] });
};
