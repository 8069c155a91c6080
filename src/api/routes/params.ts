/** The path parameters the resource routes share. */
import { z } from "zod";

export const appParams = z.object({ app: z.string() });
export const buildParams = z.object({ app: z.string(), id: z.string() });
