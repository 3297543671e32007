/** Entry point: styles, language, and the app. */
import { render } from "preact";
import { App } from "./app";
import { applyLang } from "./i18n";
import "./styles/app.css";
import "./styles/chat.css";
import "./styles/room.css";

applyLang();
const root = document.getElementById("app");
if (root) render(<App />, root);
