/** The one pino root. Components take child loggers (per build, per dyno) from it. */
import { type Logger, pino } from "pino";

export type { Logger };

export function createLogger(level: string, destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime },
    destination as pino.DestinationStream,
  );
}
