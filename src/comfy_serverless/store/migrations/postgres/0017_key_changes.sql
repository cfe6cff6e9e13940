-- Every API process caches key rows (auth/key_cache.py). Any change to a key that
-- authentication reads (a new key, a revocation, a rotation, new limits, tier or scope, a
-- deletion) sends NOTIFY comfy_serverless_keys with the key's lookup prefix, the old one and
-- the new one, so that every replica evicts it when the change commits. Writing
-- last_used_at alone (touch_api_key) sends nothing.
CREATE FUNCTION api_keys_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('comfy_serverless_keys', OLD.prefix);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('comfy_serverless_keys', NEW.prefix);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_notify_insert_delete AFTER INSERT OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change();
CREATE TRIGGER api_keys_notify_update
    AFTER UPDATE OF id, prefix, secret_hash, kind, tier, is_admin, name, revoked_at,
                    rotated_at, custom_limits ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change();
