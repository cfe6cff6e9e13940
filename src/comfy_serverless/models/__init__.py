"""Models: what the workers' ComfyUI instances hold (folders, hashes, capabilities), which
models each workflow needs, preloads that keep models warm, and the model list's view."""
