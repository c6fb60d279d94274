import { TransportError } from '../errors.js';

/**
 * Options of `customerPortalTransport()`.
 * @example
 * customerPortalTransport({ baseUrl: 'https://api.polar.sh', token: () => session.token, meters: await (await fetch('/api/meters')).json() })
 */
export interface CustomerPortalOptions {
  /** Polar's API origin (`https://api.polar.sh`, `https://sandbox-api.polar.sh`) or your proxy's. */
  baseUrl: string;
  /** The customer session token (`POST /v1/customer-sessions/` on your backend), asked for before every request. */
  token: () => string | Promise<string>;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /**
   * The meter definitions (as `GET /v1/meters/` returns them, which a customer token cannot read):
   * `meterBalance()` finds a meter's filter and aggregation here by its id.
   * @default []
   */
  meters?: readonly unknown[];
}

/**
 * One of the customer's meters as `GET /v1/customer-portal/meters/` returns it
 * (Polar's `CustomerCustomerMeter`), camelCase.
 * @example
 * { meterId: '…', creditedUnits: 1000, consumedUnits: 250.5, balance: 749.5, meter: { id: '…', name: 'AI tokens' } }
 */
export interface CustomerMeter {
  id: string;
  customerId: string;
  meterId: string;
  consumedUnits: number;
  creditedUnits: number;
  /** `creditedUnits - consumedUnits`, as the server computed it. */
  balance: number;
  createdAt: Date;
  modifiedAt: Date | null;
  meter: { id: string; name: string };
}

/**
 * Reads one customer's meters with a customer session token, which a browser may hold.
 * @example
 * const [tokens] = await portal.meters({ meterId });
 */
export interface CustomerPortal {
  /** The customer's meters (every page), or only `meterId`'s. */
  meters(options?: { meterId?: string; signal?: AbortSignal }): Promise<CustomerMeter[]>;
  /** The definition given in `meters` for this id, or undefined. */
  definition(meterId: string): unknown;
}

/**
 * The customer portal's meters endpoint: `GET {baseUrl}/v1/customer-portal/meters/` with
 * `Authorization: Bearer <customer session token>`. Failures reject with `TransportError`
 * (`status` 0 when no answer came).
 * @example
 * const portal = customerPortalTransport({ baseUrl: 'https://api.polar.sh', token: () => getCustomerSessionToken(), meters });
 * const { balance } = await meterBalance(mirror, portal, meterId, { externalCustomerId: 'user_42' });
 */
export function customerPortalTransport(options: CustomerPortalOptions): CustomerPortal {
  if (typeof options !== 'object' || options === null) throw new TypeError('Expected options { baseUrl, token, fetch?, meters? }.');
  const { baseUrl, token, meters = [] } = options;
  if (typeof baseUrl !== 'string' || !/^https?:\/\//.test(baseUrl)) throw new TypeError('Expected `baseUrl` to be an http(s) URL.');
  if (typeof token !== 'function') throw new TypeError('Expected `token` to be a function that returns the customer session token.');
  if (options.fetch !== undefined && typeof options.fetch !== 'function') throw new TypeError('Expected `fetch` to be a function.');
  if (!Array.isArray(meters)) throw new TypeError('Expected `meters` to be an array of meter definitions.');
  const root = baseUrl.replace(/\/+$/, '');
  return {
    definition: (meterId) => meters.find((m) => (m as { id?: unknown } | null)?.id === meterId),
    async meters({ meterId, signal } = {}) {
      const doFetch = options.fetch ?? globalThis.fetch;
      const items: CustomerMeter[] = [];
      for (let page = 1, last = 1; page <= last; page++) {
        const url = `${root}/v1/customer-portal/meters/?page=${page}&limit=100${meterId === undefined ? '' : `&meter_id=${encodeURIComponent(meterId)}`}`;
        const fail = (status: number, why: string, cause?: unknown) =>
          new TransportError(`GET ${url} ${status === 0 ? 'failed' : `answered ${status}`}: ${why}`, { status, url, cause });
        let response: Response;
        try {
          const init: RequestInit = { headers: { authorization: `Bearer ${await token()}`, accept: 'application/json' } };
          if (signal) init.signal = signal;
          response = await doFetch(url, init);
        } catch (error) {
          throw fail(0, String((error as Error)?.message ?? error), error);
        }
        const body = (await response.json().catch(() => undefined)) as { items?: unknown; pagination?: { max_page?: unknown } } | undefined;
        if (!response.ok) {
          const detail = (body as { detail?: unknown } | undefined)?.detail;
          throw fail(response.status, typeof detail === 'string' ? detail : response.statusText || 'request refused');
        }
        if (!Array.isArray(body?.items) || typeof body.pagination?.max_page !== 'number') throw fail(response.status, 'not a page of customer meters');
        for (const item of body.items) {
          const meter = customerMeterOf(item);
          if (!meter) throw fail(response.status, 'not a page of customer meters');
          items.push(meter);
        }
        last = body.pagination.max_page;
      }
      return items;
    },
  };
}

function customerMeterOf(item: unknown): CustomerMeter | undefined {
  const o = item as Record<string, any> | null;
  const numbers = ['consumed_units', 'credited_units', 'balance'].every((k) => typeof o?.[k] === 'number');
  if (!numbers || typeof o?.['meter_id'] !== 'string' || typeof o['meter']?.name !== 'string') return undefined;
  return {
    id: o['id'],
    customerId: o['customer_id'],
    meterId: o['meter_id'],
    consumedUnits: o['consumed_units'],
    creditedUnits: o['credited_units'],
    balance: o['balance'],
    createdAt: new Date(o['created_at']),
    modifiedAt: o['modified_at'] == null ? null : new Date(o['modified_at']),
    meter: { id: o['meter'].id, name: o['meter'].name },
  };
}
