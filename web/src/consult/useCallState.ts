import { useCallback, useSyncExternalStore } from 'react';
import type { CallSession, CallState } from './call-session.js';

export function useCallState(session: CallSession): CallState {
  const subscribe = useCallback((onChange: () => void) => session.on('change', onChange), [session]);
  return useSyncExternalStore(subscribe, () => session.state);
}
