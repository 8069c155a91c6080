/** Vitest setup file: registered first, so (hooks run as a stack) this afterAll runs last in each file. */
import { afterAll } from "vitest";
import { removeTempDirs } from "./tmp.js";

afterAll(() => removeTempDirs());
