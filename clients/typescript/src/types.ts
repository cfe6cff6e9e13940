/**
 * The API's bodies, from the generated OpenAPI types (src/openapi.ts). Where the document
 * does not yet describe a body field by field, the fields this client reads are named here
 * too (intersected with the generated type, so a precise document only narrows them), as
 * the Python SDK's models name them.
 */
import type { components, paths } from "./openapi.js";

/** The JSON body that operation `M` of path `P` answers with status `S` (unknown if none). */
export type JsonAnswer<P extends keyof paths, M extends keyof paths[P], S extends number> =
  paths[P][M] extends { responses: infer Answers }
    ? S extends keyof Answers
      ? Answers[S] extends { content: { "application/json": infer Body } } ? Body : unknown
      : unknown
    : unknown;

export type ExecutionState = "queued" | "processing" | "completed" | "failed" | "cancelled";
export type ErrorBody = components["schemas"]["ErrorBody"];
export type ExecuteRequest = components["schemas"]["ExecuteRequest"];
/** A workflow graph in the API format (or the UI format, which the service converts). */
export type Workflow = ExecuteRequest["workflow"];

export type Accepted = JsonAnswer<"/v1/workflows/execute", "post", 202> & {
  status: string;
  execution_id: string;
  queue_position?: number | null;
  status_url: string;
  cancel_url: string;
};

export type ExecutionStatus = JsonAnswer<"/v1/workflows/{execution_id}/status", "get", 200> & {
  execution_id: string;
  status: ExecutionState;
  progress: number;
  current_node?: string | null;
  current_step?: number | null;
  total_steps?: number | null;
};

export type Cancelled = JsonAnswer<"/v1/workflows/{execution_id}/cancel", "delete", 200> & {
  status: string;
  execution_id: string;
  cancelled_at?: string | null;
  reason?: string | null;
};

export interface Output {
  node_id: string;
  output_type: string;
  file_info: { filename: string; size_bytes: number; content_type?: string | null };
  storage: { provider: string; key: string; url: string; expires_at?: string | null };
}

export type Results = JsonAnswer<"/v1/workflows/{execution_id}/results", "get", 200> & {
  execution_id: string;
  status: ExecutionState;
  results: { outputs: Output[]; intermediate_outputs?: Output[] };
};

/** The data of a `progress` event. */
export interface Progress {
  execution_id: string;
  progress: number;
  current_node?: string | null;
  current_node_id?: string | null;
  current_step?: number | null;
  total_steps?: number | null;
  completed_nodes?: number;
  total_nodes?: number;
}

/** One Server-Sent Event of GET …/events: `status`, `progress`, `log`, `preview`, `output`
 * or `end` (docs/how-to/stream.md). */
export interface StreamEvent {
  id: number;
  event: string;
  data: Record<string, unknown>;
}
