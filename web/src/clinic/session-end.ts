import { backToSignIn } from '../app/api.js';

/**
 * What the clinic does when the server answers that the session has ended (401). Usually: to
 * sign-in and back. While a page holds typed work the server has not got yet (the visit note),
 * leaving would lose it: that page registers here and signs the clinician in again in place.
 */
type Keeper = () => void;
const keepers = new Set<Keeper>();

/** While registered, an ended session calls `keeper` instead of leaving the page. Returns the unregister. */
export function keepPageWhenSessionEnds(keeper: Keeper): () => void {
  keepers.add(keeper);
  return () => {
    keepers.delete(keeper);
  };
}

/** The server said 401: the pages that keep their place sign in again there, otherwise to sign-in. */
export function sessionEnded(): void {
  if (keepers.size === 0) return backToSignIn();
  for (const keeper of keepers) keeper();
}
