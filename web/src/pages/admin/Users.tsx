/** Users of the tenant (create, enable/disable, roles) and API keys (create once-shown, revoke). */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { api } from "../../api/client";
import type { AdminUser, ApiKey, ListOf, Me } from "../../api/types";
import { ConfirmButton, Empty, ErrorBanner, Skeleton, Table, copyText, errorText, useLoad } from "../../components/Common";
import { Icon } from "../../components/Icon";
import { t } from "../../i18n";
import { formatDateTime, splitList } from "../../lib/format";
import { toast } from "../../toast";

const ROLE_CHOICES = ["user", "builder", "admin"];

function NewUser({ onDone }: { onDone: () => void }): JSX.Element {
  const [name, setName] = useState("");
  const [roles, setRoles] = useState<string[]>(["user"]);
  const [groups, setGroups] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    try {
      await api("/v1/admin/users", { method: "POST", body: { name: name.trim(), roles, groups: splitList(groups) } });
      toast(t("users.created", { name: name.trim() }), "success");
      setName("");
      setGroups("");
      onDone();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form class="card form-grid" onSubmit={(e) => void submit(e)}>
      <h2 class="card-title span-all">{t("users.new")}</h2>
      <label class="field">
        <span>{t("users.name")}</span>
        <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      <fieldset class="field">
        <legend>{t("users.roles")}</legend>
        <div class="checks">
          {ROLE_CHOICES.map((role) => (
            <label key={role} class="check">
              <input
                type="checkbox"
                checked={roles.includes(role)}
                onChange={(e) => setRoles(e.currentTarget.checked ? [...roles, role] : roles.filter((r) => r !== role))}
              />
              {role}
            </label>
          ))}
        </div>
      </fieldset>
      <label class="field">
        <span>{t("users.groups")}</span>
        <input value={groups} placeholder="finance, emea" onInput={(e) => setGroups(e.currentTarget.value)} />
      </label>
      {error && <p class="form-error span-all" role="alert">{error}</p>}
      <div class="span-all">
        <button type="submit" class="btn primary" disabled={!name.trim()}>
          <Icon name="plus" size={15} /> {t("users.create")}
        </button>
      </div>
    </form>
  );
}

function NewKey({ users, me, onDone }: { users: string[]; me: Me; onDone: () => void }): JSX.Element {
  const [user, setUser] = useState(me.user);
  const [name, setName] = useState("");
  const [shown, setShown] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    try {
      const key = await api<ApiKey>("/v1/keys", { method: "POST", body: { user, name: name.trim() } });
      setShown(key.key ?? null);
      setName("");
      onDone();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const choices = users.includes(me.user) ? users : [me.user, ...users];
  return (
    <form class="card form-grid" onSubmit={(e) => void submit(e)}>
      <h2 class="card-title span-all">{t("keys.new")}</h2>
      <label class="field">
        <span>{t("keys.user")}</span>
        <select value={user} onChange={(e) => setUser(e.currentTarget.value)}>
          {choices.map((u) => (
            <option key={u} value={u}>
              {u}
            </option>
          ))}
        </select>
      </label>
      <label class="field">
        <span>{t("keys.label")}</span>
        <input value={name} placeholder={t("keys.labelPlaceholder")} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      {error && <p class="form-error span-all" role="alert">{error}</p>}
      <div class="span-all">
        <button type="submit" class="btn primary">
          <Icon name="plus" size={15} /> {t("keys.create")}
        </button>
      </div>
      {shown && (
        <div class="secret span-all" role="status">
          <p>{t("keys.shownOnce")}</p>
          <div class="row">
            <code class="grow">{shown}</code>
            <button type="button" class="btn small" onClick={() => void copyText(shown).then(() => toast(t("common.copied"), "success"))}>
              <Icon name="copy" size={14} /> {t("common.copy")}
            </button>
          </div>
        </div>
      )}
    </form>
  );
}

export function UsersTab({ me }: { me: Me }): JSX.Element {
  const users = useLoad(() => api<ListOf<AdminUser>>("/v1/admin/users"), []);
  const keys = useLoad(() => api<ListOf<ApiKey>>("/v1/keys"), []);

  const patch = async (user: AdminUser, body: Record<string, unknown>): Promise<void> => {
    try {
      await api(`/v1/admin/users/${encodeURIComponent(user.name)}`, { method: "PATCH", body });
      users.reload();
    } catch (err) {
      toast(errorText(err), "error");
    }
  };
  const revoke = async (key: ApiKey): Promise<void> => {
    try {
      await api(`/v1/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
      toast(t("keys.revoked"), "success");
      keys.reload();
    } catch (err) {
      toast(errorText(err), "error");
    }
  };

  return (
    <div class="stack">
      <section class="card">
        <h2 class="card-title">{t("users.title")}</h2>
        {users.error && <ErrorBanner error={users.error} onRetry={users.reload} />}
        {users.loading && !users.data && <Skeleton lines={4} />}
        {users.data && users.data.data.length === 0 && <Empty icon="shield" title={t("users.none")} />}
        {users.data && users.data.data.length > 0 && (
          <Table columns={[t("users.name"), t("users.roles"), t("users.groups"), t("users.status")]} actions>
            {users.data.data.map((u) => (
              <tr key={u.name} data-testid="user-row">
                <td>
                  <strong>{u.name}</strong>
                </td>
                <td>
                  <div class="checks">
                    {ROLE_CHOICES.map((role) => (
                      <label key={role} class="check small">
                        <input
                          type="checkbox"
                          checked={u.roles.includes(role)}
                          disabled={u.name === me.user && role === "admin"}
                          onChange={(e) =>
                            void patch(u, {
                              roles: e.currentTarget.checked ? [...u.roles, role] : u.roles.filter((r) => r !== role),
                            })
                          }
                        />
                        {role}
                      </label>
                    ))}
                  </div>
                </td>
                <td class="muted">{u.groups.join(", ")}</td>
                <td>
                  <span class={`badge ${u.disabled ? "error" : "done"}`}>{u.disabled ? t("users.disabled") : t("users.active")}</span>
                </td>
                <td class="actions">
                  {u.name !== me.user &&
                    (u.disabled ? (
                      <button type="button" class="btn small" onClick={() => void patch(u, { disabled: false })}>
                        {t("users.enable")}
                      </button>
                    ) : (
                      <ConfirmButton label={t("users.disable")} onConfirm={() => void patch(u, { disabled: true })} />
                    ))}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </section>
      <NewUser onDone={users.reload} />
      <section class="card">
        <h2 class="card-title">{t("keys.title")}</h2>
        {keys.error && <ErrorBanner error={keys.error} onRetry={keys.reload} />}
        {keys.loading && !keys.data && <Skeleton lines={3} />}
        {keys.data && keys.data.data.length === 0 && <Empty title={t("keys.none")} />}
        {keys.data && keys.data.data.length > 0 && (
          <Table columns={[t("keys.id"), t("keys.user"), t("keys.label"), t("users.roles"), t("keys.created")]} actions>
            {keys.data.data.map((k) => (
              <tr key={k.id} class={k.revoked_at ? "revoked" : undefined}>
                <td>
                  <code>{k.id}</code>
                </td>
                <td>{k.user}</td>
                <td>{k.name}</td>
                <td class="muted">{k.roles.join(", ")}</td>
                <td class="muted">{formatDateTime(k.created_at)}</td>
                <td class="actions">
                  {k.revoked_at ? (
                    <span class="badge denied">{t("keys.revokedBadge")}</span>
                  ) : (
                    <ConfirmButton label={t("keys.revoke")} onConfirm={() => void revoke(k)} />
                  )}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </section>
      <NewKey users={(users.data?.data ?? []).map((u) => u.name)} me={me} onDone={keys.reload} />
    </div>
  );
}
