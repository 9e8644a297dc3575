import { en } from 'zod/locales';
import * as z from 'zod/mini';

/**
 * Unlike classic zod, zod/mini installs no locale: without one every issue message is the bare
 * "Invalid input", and the reasons the agent gives (a refused request body, a damaged state file, a
 * wrong variable) lose what was wrong. Imported by each module whose issue messages reach a person.
 * Classic zod sets English only when no locale is set, and so does this. `en` is imported by name:
 * `z.locales.en` put all of zod's fifty-odd locales in the bundle (300 kB).
 */
if (z.config().localeError === undefined) z.config(en());
