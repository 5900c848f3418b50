-- Reservations keep only what label printing, tracking and the audit need. Rows stored before this
-- migration kept the whole KSS request body minus the recipient, unknown fields included (a
-- shopper's note with a name and a phone number, or a megabyte of anything): keep only its known,
-- non-personal parts. Erased rows also lose the add-on texts a shopper typed (a door code).
UPDATE shipments
   SET request = (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb)
                    FROM jsonb_each(request) WHERE key IN ('currency', 'locale', 'order', 'sender'))
 WHERE EXISTS (SELECT 1 FROM jsonb_object_keys(request) k WHERE k NOT IN ('currency', 'locale', 'order', 'sender'));

UPDATE shipments
   SET selection = jsonb_set(selection, '{addons}',
                             (SELECT coalesce(jsonb_agg(a - 'text'), '[]'::jsonb)
                                FROM jsonb_array_elements(selection->'addons') a))
 WHERE erased_at IS NOT NULL AND jsonb_typeof(selection->'addons') = 'array';
