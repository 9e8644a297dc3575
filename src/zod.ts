import { en } from 'zod/locales';
import * as z from 'zod/mini';

/**
 * The agent's one door to zod: its smaller build, zod/mini (issue 24: loading the classic API cost the
 * idle agent about 2 MB), with English issue messages. Unlike classic zod, zod/mini installs no
 * locale: without one every issue is the bare "Invalid input", and the reasons the agent gives (a
 * refused request body, a damaged state file, a wrong variable, a registry's bad answer) lose what was
 * wrong. Every module imports zod from here (`import * as z from './zod.js'`), so no process, the
 * supply-chain check's included, can parse without the locale. Classic zod sets English only when no
 * locale is set, and so does this. `en` is imported by name: `z.locales.en` put all of zod's fifty-odd
 * locales in the bundle (300 kB).
 */
if (z.config().localeError === undefined) z.config(en());

export * from 'zod/mini';
