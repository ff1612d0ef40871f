-- The lookup function for dbward's SCRAM mediation (scram.verifiers:
-- auth_query, the default auth_query calls it). Run it as a superuser in
-- every database clients connect to (or in template1 before creating them):
--   psql -U postgres -d app -f scram-user-lookup.sql
-- and create the role that calls it:
--   CREATE ROLE dbward_auth LOGIN PASSWORD '...';
-- It returns a login role's SCRAM verifier (pg_authid.rolpassword), never for
-- a role whose password expired, and runs with a fixed search_path so that
-- nothing a client sets can change what it reads. Only dbward_auth may call it.
CREATE SCHEMA IF NOT EXISTS dbward;
CREATE OR REPLACE FUNCTION dbward.user_lookup(i_username text, OUT usename text, OUT passwd text)
RETURNS record AS $$
BEGIN
  SELECT a.rolname::text,
         CASE WHEN a.rolvaliduntil < pg_catalog.now() THEN NULL ELSE a.rolpassword END
    FROM pg_catalog.pg_authid a
   WHERE a.rolname = i_username AND a.rolcanlogin
    INTO usename, passwd;
  RETURN;
END;
$$ LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbward.user_lookup(text) FROM public;
GRANT USAGE ON SCHEMA dbward TO dbward_auth;
GRANT EXECUTE ON FUNCTION dbward.user_lookup(text) TO dbward_auth;
