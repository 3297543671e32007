/** Sign-in: an API key (POST /v1/auth/session with it as Bearer) or the SSO button. */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { api } from "../api/client";
import { errorText } from "../components/Common";
import { Icon } from "../components/Icon";
import { t } from "../i18n";
import type { SessionState } from "../session";

export function LoginPage({ session, onSignedIn }: { session: SessionState; onSignedIn: () => Promise<void> }): JSX.Element {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const methods = session.methods;

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const value = key.trim();
    if (!value) {
      setError(t("login.keyRequired"));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api("/v1/auth/session", {
        method: "POST",
        headers: { Authorization: `Bearer ${value}` },
        quiet401: true,
      });
      setKey("");
      await onSignedIn();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login-page">
      <div class="login-card">
        <div class="login-brand">
          <span class="logo-mark" aria-hidden="true">
            <Icon name="spark" size={22} />
          </span>
          <h1>{t("login.title")}</h1>
          <p class="muted">{t("login.subtitle")}</p>
        </div>
        {methods.api_key !== false && (
          <form onSubmit={(e) => void submit(e)} class="login-form" noValidate>
            <label for="login-key">{t("login.key")}</label>
            <input
              id="login-key"
              data-testid="login-key"
              type="password"
              autoComplete="current-password"
              spellcheck={false}
              placeholder="gk_…"
              value={key}
              aria-invalid={error ? "true" : undefined}
              aria-describedby={error ? "login-error" : "login-help"}
              onInput={(e) => setKey(e.currentTarget.value)}
            />
            <p id="login-help" class="muted small">
              {t("login.keyHelp")}
            </p>
            {error && (
              <p id="login-error" class="form-error" role="alert">
                {error}
              </p>
            )}
            <button type="submit" class="btn primary block" data-testid="login-submit" disabled={busy}>
              {busy ? t("login.signingIn") : t("login.signIn")}
            </button>
          </form>
        )}
        {methods.oidc && (
          <>
            {methods.api_key !== false && <div class="divider">{t("login.or")}</div>}
            <button
              type="button"
              class="btn block"
              data-testid="login-sso"
              onClick={() => {
                location.href = "/v1/auth/oidc/login";
              }}
            >
              <Icon name="shield" size={16} /> {t("login.sso")}
            </button>
          </>
        )}
      </div>
    </main>
  );
}
