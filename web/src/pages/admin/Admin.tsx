/** The admin area: tabs for users and keys, assistants, plugins, audit, sentiment, feedback. */
import type { JSX } from "preact";
import type { Me } from "../../api/types";
import { t } from "../../i18n";
import { AssistantsTab } from "./Assistants";
import { AuditTab } from "./Audit";
import { FeedbackTab } from "./Feedback";
import { PluginsTab } from "./Plugins";
import { SentimentTab } from "./Sentiment";
import { UsersTab } from "./Users";

const TABS = [
  { id: "users", key: "admin.users", admin: true },
  { id: "assistants", key: "admin.assistants", admin: false },
  { id: "plugins", key: "admin.plugins", admin: true },
  { id: "audit", key: "admin.audit", admin: true },
  { id: "sentiment", key: "admin.sentiment", admin: true },
  { id: "feedback", key: "admin.feedback", admin: true },
] as const;

export function AdminPage({ me, tab }: { me: Me; tab: string }): JSX.Element {
  const tabs = TABS.filter((x) => me.is_admin || !x.admin);
  const current = tabs.find((x) => x.id === tab) ?? tabs[0];
  let body: JSX.Element | null = null;
  switch (current?.id) {
    case "users":
      body = <UsersTab me={me} />;
      break;
    case "assistants":
      body = <AssistantsTab />;
      break;
    case "plugins":
      body = <PluginsTab />;
      break;
    case "audit":
      body = <AuditTab />;
      break;
    case "sentiment":
      body = <SentimentTab />;
      break;
    case "feedback":
      body = <FeedbackTab />;
      break;
  }
  return (
    <div class="page admin">
      <div class="page-head">
        <h1>{t("admin.title")}</h1>
      </div>
      <nav class="tabs" aria-label={t("admin.title")}>
        {tabs.map((x) => (
          <a key={x.id} href={`#/admin/${x.id}`} class={`tab${x.id === current?.id ? " active" : ""}`} aria-current={x.id === current?.id ? "page" : undefined}>
            {t(x.key)}
          </a>
        ))}
      </nav>
      {body}
    </div>
  );
}
