// Verifies Voxline webhook signatures with the official Retell Node SDK (retell-sdk 5.66.1).
//
// Reads JSON lines {"body", "signature", "api_key"} from stdin and prints one line per input,
// "true" or "false", from `Retell.verify(body, apiKey, signature)` (a Promise in this SDK).
// With "reserialize": true the body is first put through JSON.stringify(JSON.parse(body)), as
// Retell's Node demo does with an Express JSON body. Used by tests/test_webhooks.py.
import { createInterface } from "node:readline";

import Retell from "retell-sdk";

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { body, signature, api_key: apiKey, reserialize = false } = JSON.parse(line);
  let ok;
  try {
    const text = reserialize ? JSON.stringify(JSON.parse(body)) : body;
    ok = (await Retell.verify(text, apiKey, signature)) === true;
  } catch {
    ok = false;
  }
  process.stdout.write(`${ok}\n`);
}
