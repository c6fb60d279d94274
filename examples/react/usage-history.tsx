// A component that shows the history with each event's delivery state.
import type { LocalEvent, Mirror, QueryFilter } from 'polar-event-buffer/mirror';
import { deliveryState, useUsageEvents, type UsageState } from './use-usage-events.js';

const LABELS = {
  pending: 'Pending: on this device, not sent yet',
  sent: 'Sent: accepted by Polar, not confirmed yet',
  confirmed: 'Confirmed by Polar',
  failed: 'Failed: refused by Polar',
} as const;

export function UsageHistory({ mirror, filter }: { mirror: Mirror; filter?: QueryFilter }) {
  return <UsageHistoryView state={useUsageEvents(mirror, filter)} />;
}

/** The view alone (no mirror), e.g. for server rendering or a story. */
export function UsageHistoryView({ state }: { state: UsageState }) {
  if (state.loading) return <p>Loading usage…</p>;
  if (state.error) return <p role="alert">Could not read usage: {state.error.message}</p>;
  if (state.events.length === 0) return <p>No usage yet.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>When</th>
          <th>Event</th>
          <th>Details</th>
          <th>State</th>
        </tr>
      </thead>
      <tbody>
        {state.events.map((event) => (
          <UsageRow key={event.serverId ?? event.externalId} event={event} />
        ))}
      </tbody>
    </table>
  );
}

function UsageRow({ event }: { event: LocalEvent }) {
  const state = deliveryState(event);
  return (
    <tr data-state={state}>
      <td>{event.timestamp.toISOString()}</td>
      <td>{event.name}</td>
      <td>{JSON.stringify(event.metadata)}</td>
      <td title={event.error ?? undefined}>{LABELS[state]}</td>
    </tr>
  );
}
