import * as z from '../zod.js';
import type { EnginePlatform } from './engine-port.js';

/**
 * The engine's platform, from its own answers: `GET /version` names its Go os and architecture
 * (`linux`, `amd64`), what containerd's `platforms.DefaultSpec()` starts from. The variant
 * DefaultSpec adds only on ARM, from the CPU (containerd's cpuinfo.go: /proc/cpuinfo's "CPU
 * architecture", else the kernel's machine name); the Engine API does not report it, so it is read
 * from `GET /info`'s Architecture (the kernel's machine name, `armv7l`, `aarch64`) as containerd's
 * fallback does. Elsewhere (amd64 and the rest) DefaultSpec has no variant either.
 */
export const versionSchema = z.looseObject({
  Os: z.string().check(z.minLength(1), z.maxLength(64)),
  Arch: z.string().check(z.minLength(1), z.maxLength(64)),
});
export const infoSchema = z.looseObject({ Architecture: z.optional(z.string().check(z.maxLength(64))) });

export const needsVariant = (architecture: string): boolean => architecture === 'arm' || architecture === 'arm64';

/** containerd's getCPUVariantFromArch, then its naming (`7` → `v7`). */
export function variantFromMachine(machine: string): string {
  const m = machine.toLowerCase();
  if (m === 'aarch64' || m === 'arm64') return 'v8';
  const arm = /^armv(\d)/.exec(m);
  return arm?.[1] !== undefined && Number(arm[1]) >= 3 ? `v${arm[1]}` : '';
}

export function enginePlatform(version: unknown, info: unknown): EnginePlatform {
  const v = versionSchema.parse(version);
  const architecture = v.Arch.toLowerCase();
  const machine = info === null ? undefined : infoSchema.parse(info).Architecture;
  return {
    os: v.Os.toLowerCase(),
    architecture,
    variant: needsVariant(architecture) && machine !== undefined ? variantFromMachine(machine) : '',
  };
}
