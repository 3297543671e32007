/** Shapes of graft's HTTP API, as the UI reads them (see /v1 routes in src/graft/server). */

export interface ApiErrorBody {
  error?: { message?: string; type?: string; code?: string | null; param?: string | null };
}

export interface AuthMethods {
  single_user: boolean;
  api_key: boolean;
  oidc: boolean;
}

export interface Me {
  user: string;
  tenant: string;
  roles: string[];
  groups: string[];
  is_admin: boolean;
  is_builder: boolean;
}

export interface ListOf<T> {
  object?: string;
  data: T[];
}

export interface ConversationHeader {
  id: string;
  title: string | null;
  assistant: string | null;
  created_at: string;
  updated_at: string;
}

export interface Sentiment {
  label: string;
  score: number;
  emotion?: string | null;
  backend?: string;
}

export interface WireToolCall {
  id: string;
  type?: string;
  function: { name: string; arguments: string };
}

export interface StoredMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | null | Array<{ type: string; text?: string }>;
  tool_calls?: WireToolCall[];
  tool_call_id?: string;
  name?: string;
  turn_id: string;
  created_at: string;
  sentiment?: Sentiment;
}

export interface Feedback {
  rating: "up" | "down";
  comment?: string | null;
}

export interface StoredToolRun {
  call_id: string;
  name: string;
  arguments: string;
  result: string;
  is_error: boolean;
  duration_ms: number;
}

export interface StoredTurn {
  id: string;
  status: string;
  model: string;
  finish_reason: string | null;
  error: string | null;
  duration_ms: number | null;
  tool_runs: StoredToolRun[];
  feedback?: Feedback | null;
  /** The passages the answer cited (the stream's "cited" event), kept with the turn. */
  citations?: Citation[];
}

export interface Conversation extends ConversationHeader {
  messages: StoredMessage[];
  turns: StoredTurn[];
}

export interface Citation {
  n: number;
  document_id: string;
  chunk_id: string | number;
  link: string;
  collection?: string;
  title?: string;
  source?: string;
  section?: string | null;
  page?: number | null;
  text?: string;
  snippet?: string;
}

export type GraftEvent =
  | { event: "tool_call"; id: string; name: string; arguments: string }
  | {
      event: "tool_result";
      id: string;
      name: string;
      content: string;
      is_error: boolean;
      duration_ms: number;
      data?: unknown;
    }
  | {
      event: "approval_required";
      id: string;
      call_id: string;
      name: string;
      arguments: string;
      timeout: number;
    }
  | ({ event: "sentiment" } & Sentiment)
  | { event: "escalation"; reason: string; negative_in_a_row: number }
  | { event: "citations"; stage: "retrieved" | "cited"; citations: Citation[] };

export interface ChatChunk {
  id?: string;
  conversation_id?: string;
  turn_id?: string;
  choices?: Array<{
    index: number;
    delta?: { role?: string; content?: string | null; tool_calls?: unknown[] };
    finish_reason?: string | null;
  }>;
  graft?: GraftEvent;
  error?: { message?: string; type?: string; code?: string | null };
}

export interface ModelInfo {
  id: string;
}

export interface AssistantDefinition {
  description?: string;
  model?: string | null;
  system_prompt?: string;
  tools?: string[] | null;
  middleware?: string[];
  roles?: string[];
  users?: string[];
  groups?: string[];
  tenants?: string[];
  temperature?: number | null;
  max_tokens?: number | null;
  tools_shown?: number | null;
  pinned_tools?: string[];
  sources?: string[] | null;
  collections?: string[];
  retrieval?: "tool" | "always";
}

export interface AssistantInfo {
  id: string;
  source: "config" | "stored";
  description: string;
  model: string;
  definition: AssistantDefinition | null;
}

export interface ToolInfo {
  name: string;
  description?: string;
  plugin?: string | null;
}

export interface SourceInfo {
  name: string;
  dialect?: string;
  tables?: string[];
}

export interface CollectionInfo {
  name: string;
  documents: number;
}

export interface DocumentInfo {
  id: string;
  title: string;
  source: string;
  chunks: number;
  bytes?: number | null;
  updated_at?: string | null;
}

export interface DocumentChunk {
  id: string | number;
  position: number;
  heading?: string | null;
  page?: number | null;
  text: string;
}

export interface DocumentFull {
  id: string;
  collection: string;
  title: string;
  source: string;
  media_type?: string;
  ingested_at?: string;
  chunks: DocumentChunk[];
}

export interface UploadResult {
  filename: string;
  status: "added" | "updated" | "unchanged" | "failed";
  document_id?: string;
  chunks?: number;
  error?: string;
}

export interface AdminUser {
  name: string;
  tenant?: string;
  roles: string[];
  groups: string[];
  disabled?: boolean;
  created_at?: string | number | null;
}

export interface ApiKey {
  id: string;
  user: string;
  name: string;
  roles: string[];
  created_by?: string | null;
  created_at: number | null;
  revoked_at: number | null;
  key?: string;
}

export interface AuditRecord {
  seq: number;
  at: string;
  tenant: string;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  details: unknown;
}

export interface SentimentPoint {
  start: string;
  assistant: string;
  conversation_id: string | null;
  negative: number;
  neutral: number;
  positive: number;
  mean: number;
}

export interface PluginsReport {
  plugins: Array<{ name: string; package?: string | null; version?: string | null; hooks?: string[] }>;
  mcp_servers: Array<{ name: string; transport?: string; tools?: number | string[] }>;
  services?: Array<Record<string, unknown>>;
}

export interface FeedbackRecord {
  id: string;
  turn_id: string;
  conversation_id: string;
  user?: string;
  rating: "up" | "down";
  comment?: string | null;
  created_at: string;
}
