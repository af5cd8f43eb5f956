/**
 * A webhook receiver inside the container: a transient systemd service (systemd-run) running a
 * small Node HTTP server on the container's loopback that appends each POSTed body as one line
 * to a file in the shared folder. Stopped with `stop()`.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Container } from './container.js';

const SOURCE = `const http = require('node:http');
const fs = require('node:fs');
const [port, file] = process.argv.slice(2);
http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    if (req.method === 'POST') fs.appendFileSync(file, JSON.stringify(JSON.parse(body)) + '\\n');
    res.end('ok');
  });
}).listen(Number(port), '127.0.0.1');
`;

export interface AlertEvent {
  project: string;
  environment: string;
  app: string;
  event: 'down' | 'up';
  detail: string;
}

export interface AlertReceiver {
  url: string;
  events(): Promise<AlertEvent[]>;
  stop(): Promise<void>;
}

export async function startAlertReceiver(box: Container, port = 18999): Promise<AlertReceiver> {
  await fsp.writeFile(path.join(box.hostShared, 'alert-receiver.cjs'), SOURCE);
  const hostFile = path.join(box.hostShared, 'alerts.jsonl');
  await fsp.writeFile(hostFile, '');
  const unit = 'alert-receiver.service';
  await box.execOk(['systemd-run', `--unit=${unit}`, 'node', `${box.guestShared}/alert-receiver.cjs`, String(port), `${box.guestShared}/alerts.jsonl`]);
  const url = `http://127.0.0.1:${port}/alerts`;
  const deadline = Date.now() + 10_000;
  while ((await box.httpGet(`http://127.0.0.1:${port}/`, 1)).status !== 200) {
    if (Date.now() > deadline) throw new Error(`the alert receiver does not answer on ${port}: ${await box.journal(unit)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async events() {
      const text = await fsp.readFile(hostFile, 'utf8');
      return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as AlertEvent);
    },
    async stop() {
      await box.systemctl('stop', unit);
    },
  };
}
