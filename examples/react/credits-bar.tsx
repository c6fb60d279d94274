// A usage bar with "credits left", and a gate for when they run out: polar-event-buffer/react's
// useMeterBalance over the customer portal. The balance drops the moment an event is tracked, in
// every tab, and keeps dropping offline (the portal's last answer minus what Polar's meter may not count yet).
//
//   const portal = customerPortalTransport({ baseUrl: 'https://api.polar.sh', token: getSessionToken, meters });
//   <CreditsBar mirror={mirror} portal={portal} meterId={meters[0].id} externalCustomerId={user.id} />
import type { ReactNode } from 'react';
import type { CustomerPortal, MeterBalance } from 'polar-event-buffer/meters';
import type { Mirror } from 'polar-event-buffer/mirror';
import { useMeterBalance, type LiveState } from 'polar-event-buffer/react';

interface Props {
  /** null on the server (no IndexedDB there): the bar renders its loading state. */
  mirror: Mirror | null;
  portal: CustomerPortal | null;
  meterId: string;
  externalCustomerId: string;
}

export function CreditsBar({ mirror, portal, meterId, externalCustomerId }: Props) {
  return <CreditsBarView state={useMeterBalance(mirror, portal, meterId, { externalCustomerId })} />;
}

/** The view alone, for a server render or a story. */
export function CreditsBarView({ state }: { state: LiveState<MeterBalance> }) {
  const { data, error } = state;
  if (!data) return error ? <p role="alert">Could not read your credits: {error.message}</p> : <p>Loading credits…</p>;
  const left = Math.max(0, data.balance);
  return (
    <div>
      <p>
        <b>{left}</b> credits left of {data.credited}
        {data.uncounted > 0 && <small> ({data.uncounted} used, not counted by Polar yet)</small>}
      </p>
      <meter min={0} max={data.credited} value={left} />
    </div>
  );
}

/** Renders `children` while the customer has credits left, else the out-of-credits message. */
export function CreditsGate({ mirror, portal, meterId, externalCustomerId, children }: Props & { children: ReactNode }) {
  return <CreditsGateView state={useMeterBalance(mirror, portal, meterId, { externalCustomerId })}>{children}</CreditsGateView>;
}

export function CreditsGateView({ state: { data }, children }: { state: LiveState<MeterBalance>; children: ReactNode }) {
  if (!data) return null;
  return data.balance > 0 ? children : <p role="alert">You are out of credits.</p>;
}
