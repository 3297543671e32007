/**
 * The app shell: session bootstrap, hash routes, the top bar (navigation, language, user)
 * and the pages. The chat page stays mounted once opened, so a running answer survives a
 * visit to another page.
 */
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, setUnauthorizedHandler } from "./api/client";
import { Spinner, errorText } from "./components/Common";
import { Icon } from "./components/Icon";
import { LANGS, getLang, setLang, t, useLang } from "./i18n";
import { AdminPage } from "./pages/admin/Admin";
import { ChatPage } from "./pages/Chat";
import { DocumentPage } from "./pages/Document";
import { KnowledgePage } from "./pages/Knowledge";
import { LoginPage } from "./pages/Login";
import { currentRoute, getChatPath, navigate, useRoute } from "./router";
import { loadSession, signedOut, useSession } from "./session";
import { dismiss, toast, useToasts } from "./toast";

function Toasts(): JSX.Element {
  const toasts = useToasts();
  return (
    <div class="toasts" role="status" aria-live="polite">
      {toasts.map((item) => (
        <div key={item.id} class={`toast ${item.kind}`}>
          <span>{item.text}</span>
          <button type="button" class="icon-btn" aria-label={t("common.close")} onClick={() => dismiss(item.id)}>
            <Icon name="x" size={14} />
          </button>
        </div>
      ))}
    </div>
  );
}

function LangSwitch(): JSX.Element {
  const lang = getLang();
  const next = LANGS.find((l) => l !== lang) ?? "en";
  const name = next === "zh-CN" ? "中文" : "English";
  return (
    <button
      type="button"
      class="btn ghost small lang"
      data-testid="lang"
      aria-label={`${t("lang.label")}: ${name}`}
      title={t("lang.label")}
      onClick={() => setLang(next)}
    >
      <Icon name="globe" size={16} />
      <span lang={next}>{name}</span>
    </button>
  );
}

export function App(): JSX.Element {
  useLang();
  const session = useSession();
  const route = useRoute();
  const [chatOpened, setChatOpened] = useState(false);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      signedOut();
      if (currentRoute().parts[0] !== "login") navigate("/login");
    });
    void loadSession();
  }, []);

  const section = route.parts[0] ?? "chat";

  useEffect(() => {
    if (session.status === "signed-out" && section !== "login") navigate("/login", true);
    if (session.status === "signed-in" && (section === "login" || route.parts.length === 0)) navigate("/chat", true);
  }, [session.status, section, route.parts.length]);

  useEffect(() => {
    if (section === "chat" && session.status === "signed-in") setChatOpened(true);
  }, [section, session.status]);

  if (session.status === "loading") {
    return (
      <div class="boot" aria-busy="true">
        <Spinner label={t("common.loading")} />
      </div>
    );
  }
  if (session.status === "error") {
    return (
      <div class="boot">
        <div class="banner error" role="alert">
          {t("error.server", { message: session.error ?? "" })}
        </div>
        <button type="button" class="btn" onClick={() => void loadSession()}>
          {t("common.retry")}
        </button>
      </div>
    );
  }
  if (session.status === "signed-out" || !session.me) {
    return (
      <>
        <div class="login-lang">
          <LangSwitch />
        </div>
        <LoginPage
          session={session}
          onSignedIn={async () => {
            await loadSession();
            navigate("/chat", true);
          }}
        />
        <Toasts />
      </>
    );
  }

  const me = session.me;
  const canAdmin = me.is_admin;
  const canBuild = me.is_builder || me.is_admin;
  const signOut = async (): Promise<void> => {
    try {
      await api("/v1/auth/session", { method: "DELETE", quiet401: true });
    } catch (err) {
      toast(errorText(err), "error");
    }
    signedOut();
    navigate("/login");
  };

  let page: JSX.Element | null = null;
  if (section === "knowledge" && route.parts[1] === "doc" && route.parts[2]) {
    page = <DocumentPage id={route.parts[2]} chunk={route.params.get("chunk")} />;
  } else if (section === "knowledge") {
    page = <KnowledgePage me={me} />;
  } else if (section === "admin" && (canAdmin || canBuild)) {
    page = <AdminPage me={me} tab={route.parts[1] ?? (canAdmin ? "users" : "assistants")} />;
  } else if (section !== "chat") {
    page = (
      <div class="page">
        <div class="empty">
          <p class="empty-title">{t("error.notFound")}</p>
          <a href="#/chat" class="btn">
            {t("nav.chat")}
          </a>
        </div>
      </div>
    );
  }

  const chatActive = section === "chat";
  const navLink = (href: string, key: "nav.chat" | "nav.knowledge" | "nav.admin", active: boolean, icon: "chat" | "book" | "shield"): JSX.Element => (
    <a href={href} class={`nav-link${active ? " active" : ""}`} aria-current={active ? "page" : undefined}>
      <Icon name={icon} size={16} />
      <span>{t(key)}</span>
    </a>
  );

  return (
    <div class="app">
      <a class="skip" href="#main" onClick={(e) => {
        e.preventDefault();
        document.getElementById("main")?.focus();
      }}>
        {t("nav.skip")}
      </a>
      <header class="topbar">
        <a class="brand" href="#/chat" aria-label="graft">
          <span class="logo-mark" aria-hidden="true">
            <Icon name="spark" size={16} />
          </span>
          <span class="brand-name">graft</span>
        </a>
        <nav class="mainnav" aria-label={t("nav.main")}>
          {navLink(`#${getChatPath()}`, "nav.chat", chatActive, "chat")}
          {navLink("#/knowledge", "nav.knowledge", section === "knowledge", "book")}
          {(canAdmin || canBuild) && navLink(canAdmin ? "#/admin/users" : "#/admin/assistants", "nav.admin", section === "admin", "shield")}
        </nav>
        <div class="spacer" />
        <LangSwitch />
        <span class="user-chip" title={`${me.user} · ${me.tenant}`}>
          <span class="user-avatar" aria-hidden="true">
            {me.user.slice(0, 1).toUpperCase()}
          </span>
          <span class="user-name">{me.user}</span>
        </span>
        {!session.methods.single_user && (
          <button type="button" class="icon-btn" aria-label={t("nav.signOut")} title={t("nav.signOut")} onClick={() => void signOut()}>
            <Icon name="logout" />
          </button>
        )}
      </header>
      <main id="main" tabIndex={-1} class="main">
        {chatOpened && <ChatPage active={chatActive} routeId={chatActive ? (route.parts[1] ?? null) : null} />}
        {page}
      </main>
      <Toasts />
    </div>
  );
}
