// Streams one answer the way a React Native app does: over a WebSocket session, because React
// Native's fetch cannot read a response body as a stream, while its WebSocket (like a browser's)
// takes the subprotocols that carry the credential. Run from clients/typescript after `npm run build`:
//
//   NGX_TOKEN=$(../../.venv/bin/agentctl token --user alice) \
//     node --experimental-websocket examples/react-native-style.mjs "What is the status of order A-1234?"
//
// NGX_CHAT_URL and NGX_STREAM_URL default to the local stack (make dev).
import { ApiError, NgxClient, SessionClosedError } from "@ngx/agent-client";

const question = process.argv[2] ?? "What is the status of order A-1234?";
const token = process.env.NGX_TOKEN;
if (!token) {
  console.error("set NGX_TOKEN to an ID token (agentctl token --user alice)");
  process.exit(2);
}

const client = new NgxClient({
  baseUrl: process.env.NGX_CHAT_URL ?? "http://127.0.0.1:8081",
  streamUrl: process.env.NGX_STREAM_URL ?? "http://127.0.0.1:8082",
  // In an app: () => auth().currentUser.getIdToken(), asked again on every reconnect.
  token: async () => token,
});

// What an app does when it goes to the background: stop the answer, keep what arrived.
const controller = new AbortController();
process.once("SIGINT", () => controller.abort());

try {
  const session = await client.openSession();
  let usage;
  for await (const event of session.chat({ message: question }, { signal: controller.signal })) {
    if (event.event === "delta") process.stdout.write(event.data.text);
    if (event.event === "tool_call") process.stderr.write(`[tool ${event.data.name}] `);
    if (event.event === "usage") usage = event.data;
  }
  process.stdout.write("\n");
  console.error(`[${usage?.model}: ${usage?.input_tokens} in, ${usage?.output_tokens} out, ≈ $${usage?.cost_usd}]`);
  session.close();
} catch (error) {
  if (error instanceof ApiError) console.error(`${error.status} ${error.code}: ${error.body.message}`);
  else if (error instanceof SessionClosedError) console.error(`session closed ${error.code}: ${error.reason}`);
  else console.error(error);
  process.exitCode = 1;
}
