// The not-found and conflict cases both backends meet when they act on what a
// cache showed them: the object went away meanwhile, or is already there. One
// set of helpers for Kubernetes API errors and Docker Engine errors alike
// (both carry an HTTP status; see apiStatus).
import { apiStatus } from "../controller/errors.js";

export const isNotFoundError = (err: unknown): boolean => apiStatus(err) === 404;
export const isConflictError = (err: unknown): boolean => apiStatus(err) === 409;

/** The result of `p`, or undefined when what it acted on does not exist (404). */
export async function ignoreNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (isNotFoundError(err)) return undefined;
    throw err;
  }
}

/**
 * A delete that finds nothing to delete: 404, or 409 when a UID precondition
 * shows the object was already replaced by another of the same name.
 */
export async function ignoreGone<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (isNotFoundError(err) || isConflictError(err)) return undefined;
    throw err;
  }
}
