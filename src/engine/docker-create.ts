import type { CreateSpec } from './engine-port.js';

/** The runtime container as the engine is asked to create it (POST /containers/create), from the port's spec. */
export function createBody(spec: CreateSpec) {
  return {
    name: spec.name,
    Image: spec.image,
    Env: [...spec.env],
    Labels: { ...spec.labels },
    StopTimeout: spec.stopTimeoutSeconds,
    HostConfig: {
      NetworkMode: spec.networkMode,
      Mounts: spec.binds.map((b) => ({ Type: 'bind' as const, Source: b.source, Target: b.target, ReadOnly: false })),
      // Explicit: the engine never restarts the runtime on its own; only a deploy starts it.
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '50m', 'max-file': '3' } },
    },
  };
}
