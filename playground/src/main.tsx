/**
 * The Atrium playground: GraphiQL plus a bar for the bearer token (kept in sessionStorage, so it
 * dies with the tab) and, in demo mode, a tenant picker filled from /playground/dev-tokens.
 * Bundled by playground/build.ts; the page loads nothing from anywhere but its own origin.
 */
import 'graphiql/style.css';
import './playground.css';
import { GraphiQL, type GraphiQLProps } from 'graphiql';
import { StrictMode, useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';

type Fetcher = GraphiQLProps['fetcher'];

interface DevToken {
  tenant: string;
  displayName: string;
  token: string;
}

const TOKEN_KEY = 'atrium.playground.token';

const DEFAULT_QUERY = `# Atrium: pick a demo tenant or paste a token, then run.
# Docs and autocompletion show the token's tenant schema.
{
  viewer {
    subject
    tenant { id displayName plan features }
  }
  customers(first: 3) {
    edges { node { id name segment churnRisk { score label } } }
  }
}
`;

function readStoredToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

function storeToken(token: string): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage can be disabled; the token then lives as long as the page.
  }
}

/** The token's claims, decoded without verification: only to show whose token it is. */
function describeToken(token: string): string {
  const payload = token.split('.')[1];
  if (!payload) return token ? 'not a JWT' : 'no token: requests are refused';
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as { tenant?: unknown; sub?: unknown; exp?: unknown };
    const parts = [`tenant ${String(claims.tenant ?? '?')}`, `sub ${String(claims.sub ?? '?')}`];
    if (typeof claims.exp === 'number') {
      const expires = new Date(claims.exp * 1000);
      parts.push(expires < new Date() ? 'expired' : `expires ${expires.toLocaleTimeString()}`);
    }
    return parts.join(' · ');
  } catch {
    return 'not a JWT';
  }
}

function createFetcher(endpoint: string, token: string): Fetcher {
  return async (params, options) => {
    const headers = new Headers({
      accept: 'application/graphql-response+json, application/json',
      'content-type': 'application/json',
    });
    if (token) headers.set('authorization', `Bearer ${token}`);
    // The headers editor wins: someone typing an Authorization header there means it.
    for (const [name, value] of Object.entries(options?.headers ?? {})) {
      headers.set(name, String(value));
    }
    const response = await fetch(endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify(params),
      credentials: 'omit',
    });
    const text = await response.text();
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      return { errors: [{ message: `HTTP ${response.status}: ${text.slice(0, 200)}` }] };
    }
  };
}

function TokenBar(props: { token: string; onToken(token: string): void; devTokensUrl: string }) {
  const { token, onToken, devTokensUrl } = props;
  const [devTokens, setDevTokens] = useState<readonly DevToken[]>([]);
  const [pickerError, setPickerError] = useState('');

  useEffect(() => {
    if (!devTokensUrl) return;
    let cancelled = false;
    fetch(devTokensUrl, { credentials: 'omit', headers: { accept: 'application/json' } })
      .then(async (response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const body = (await response.json()) as { tokens: DevToken[] };
        if (!cancelled) setDevTokens(body.tokens);
      })
      .catch((error: unknown) => {
        if (!cancelled) setPickerError(`dev tokens unavailable (${String(error)})`);
      });
    return () => {
      cancelled = true;
    };
  }, [devTokensUrl]);

  const picked = devTokens.find((t) => t.token === token)?.tenant ?? '';
  return (
    <header className="atrium-bar">
      <span className="atrium-brand">Atrium</span>
      {devTokensUrl ? (
        <label className="atrium-field">
          <span>Demo tenant</span>
          <select
            id="atrium-tenant"
            value={picked}
            onChange={(event) => {
              const entry = devTokens.find((t) => t.tenant === event.target.value);
              onToken(entry?.token ?? '');
            }}
          >
            <option value="">{pickerError || 'choose…'}</option>
            {devTokens.map((t) => (
              <option key={t.tenant} value={t.tenant}>
                {t.displayName} ({t.tenant})
              </option>
            ))}
          </select>
        </label>
      ) : null}
      <label className="atrium-field atrium-token">
        <span>Bearer token</span>
        <input
          id="atrium-token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="paste a JWT"
          value={token}
          onChange={(event) => onToken(event.target.value.trim())}
        />
      </label>
      <button type="button" className="atrium-clear" onClick={() => onToken('')}>
        Clear
      </button>
      <span className="atrium-status" id="atrium-token-status">
        {describeToken(token)}
      </span>
    </header>
  );
}

function Playground(props: { endpoint: string; devTokensUrl: string; initialQuery?: string }) {
  const [token, setToken] = useState(readStoredToken);
  // A new fetcher per token: GraphiQL then introspects again, so docs and autocompletion show
  // the schema variant of the token's tenant.
  const fetcher = useMemo(() => createFetcher(props.endpoint, token), [props.endpoint, token]);
  const onToken = (next: string) => {
    storeToken(next);
    setToken(next);
  };
  return (
    <div className="atrium-root">
      <TokenBar token={token} onToken={onToken} devTokensUrl={props.devTokensUrl} />
      <div className="atrium-graphiql">
        <GraphiQL
          fetcher={fetcher}
          // Without a token introspection can only fail with 401; wait for one.
          schema={token ? undefined : null}
          defaultQuery={DEFAULT_QUERY}
          query={props.initialQuery}
          isHeadersEditorEnabled
          shouldPersistHeaders={false}
        />
      </div>
    </div>
  );
}

const mount = document.getElementById('atrium-playground');
if (mount) {
  const initialQuery = new URLSearchParams(location.search).get('query') ?? undefined;
  createRoot(mount).render(
    <StrictMode>
      <Playground
        endpoint={mount.dataset['endpoint'] || '/graphql'}
        devTokensUrl={mount.dataset['devTokens'] ?? ''}
        initialQuery={initialQuery}
      />
    </StrictMode>,
  );
}
