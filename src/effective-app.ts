// The app as it runs in one environment: the app's fields with that environment's overrides
// (environments.<env>.apps.<app>) applied. The resolver builds its model from it, and the rules
// check what really runs rather than what the app block says alone.
import type { App, Environment } from "./manifest/schema.js";

/** effectiveApp's results by environment and app name: rules and the resolver ask for each pair several times. */
const effectiveApps = new WeakMap<Environment, Map<string, { app: App; override: unknown; effective: App }>>();

/** The app as it runs in one environment. Shared between callers: do not modify the result. */
export function effectiveApp(app: App, environment: Environment, appName: string): App {
  let byName = effectiveApps.get(environment);
  if (!byName) effectiveApps.set(environment, (byName = new Map()));
  const known = byName.get(appName);
  const override = environment.apps[appName];
  if (known && known.app === app && known.override === override) return known.effective;
  const effective = withOverride(app, environment, appName);
  byName.set(appName, { app, override, effective });
  return effective;
}

function withOverride(app: App, environment: Environment, appName: string): App {
  const override = environment.apps[appName] ?? {};
  return {
    ...app,
    port: override.port ?? app.port,
    host: override.host ?? app.host,
    args: override.args ?? app.args,
    env: { ...app.env, ...(override.env ?? {}) },
    instances: override.instances ?? app.instances,
    health: override.health ?? app.health,
    stopTimeoutSeconds: override.stopTimeoutSeconds ?? app.stopTimeoutSeconds,
    execMode: override.execMode ?? app.execMode,
    maxMemory: override.maxMemory ?? app.maxMemory,
    maxRestarts: override.maxRestarts ?? app.maxRestarts,
    minUptimeSeconds: override.minUptimeSeconds ?? app.minUptimeSeconds,
    restartDelaySeconds: override.restartDelaySeconds ?? app.restartDelaySeconds,
    nodeArgs: override.nodeArgs ?? app.nodeArgs,
    interpreterArgs: override.interpreterArgs ?? app.interpreterArgs,
    logDateFormat: override.logDateFormat ?? app.logDateFormat,
    waitReady: override.waitReady ?? app.waitReady,
    cronRestart: override.cronRestart ?? app.cronRestart,
  };
}
