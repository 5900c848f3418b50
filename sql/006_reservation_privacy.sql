-- Reservations keep only what label printing, tracking and the audit need. Rows stored before this
-- migration kept the whole KSS request body minus the recipient, unknown fields included at every
-- level (a shopper's note with a name and a phone number, in the body or in an order line, or a
-- megabyte of anything): keep only the known fields of the order, its lines and the sender, as
-- tms_server.wire defines them. Erased rows also lose the add-on texts a shopper typed (a door code).

CREATE FUNCTION pg_temp.known(j jsonb, keys text[]) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(j) = 'object'
                THEN (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) FROM jsonb_each(j) WHERE key = ANY(keys))
                ELSE j END
$$;

CREATE FUNCTION pg_temp.known_address(j jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_temp.known(j, '{street_address,street_address2,postal_code,city,region,country}')
$$;

CREATE FUNCTION pg_temp.known_line(j jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_temp.known(j, '{quantity,reference,name,type,unit_price,total_price_including_tax,'
                            'total_discount_amount,total_tax_amount,tax_rate}')
        || CASE WHEN jsonb_typeof(j -> 'attributes') = 'object' THEN jsonb_build_object('attributes',
               pg_temp.known(j -> 'attributes', '{weight,tags}')
               || CASE WHEN jsonb_typeof(j -> 'attributes' -> 'dimensions') = 'object'
                       THEN jsonb_build_object('dimensions',
                                pg_temp.known(j -> 'attributes' -> 'dimensions', '{height,width,length}'))
                       ELSE '{}'::jsonb END)
           ELSE '{}'::jsonb END
$$;

CREATE FUNCTION pg_temp.known_request(r jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'currency', r -> 'currency',
        'locale', r -> 'locale',
        'order', CASE WHEN jsonb_typeof(r -> 'order') = 'object' THEN
            pg_temp.known(r -> 'order', '{total_amount,id,tags,total_tax,total_weight}')
            || CASE WHEN jsonb_typeof(r -> 'order' -> 'lines') = 'array'
                    THEN jsonb_build_object('lines', (SELECT jsonb_agg(pg_temp.known_line(x))
                                                        FROM jsonb_array_elements(r -> 'order' -> 'lines') x))
                    ELSE '{}'::jsonb END
        END,
        'sender', CASE WHEN jsonb_typeof(r -> 'sender') = 'object' THEN
            pg_temp.known(r -> 'sender', '{sender_id}')
            || CASE WHEN jsonb_typeof(r -> 'sender' -> 'address') = 'object'
                    THEN jsonb_build_object('address', pg_temp.known_address(r -> 'sender' -> 'address'))
                    ELSE '{}'::jsonb END
        END))
$$;

UPDATE shipments SET request = pg_temp.known_request(request) WHERE request IS DISTINCT FROM pg_temp.known_request(request);

UPDATE shipments
   SET selection = jsonb_set(selection, '{addons}',
                             (SELECT coalesce(jsonb_agg(a - 'text'), '[]'::jsonb)
                                FROM jsonb_array_elements(selection->'addons') a))
 WHERE erased_at IS NOT NULL AND jsonb_typeof(selection->'addons') = 'array';
