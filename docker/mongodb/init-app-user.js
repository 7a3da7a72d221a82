// Runs once, on the first start of an empty data volume (the official image's /docker-entrypoint-initdb.d/),
// as the root user. Creates the application's own user with readWrite on the avalon database only; the API
// connects as it (the mongodb_uri secret, written by `cargo xtask host init`), never as root. The password
// comes from the mongodb_app_password secret file, so it is never on a command line or in the environment.
const fs = require('fs');
const password = fs.readFileSync('/run/secrets/mongodb_app_password', 'utf8').trim();
if (password.length < 16) {
  throw new Error('mongodb_app_password must hold at least 16 characters');
}
db.getSiblingDB('avalon').createUser({
  user: 'avalon_app',
  pwd: password,
  roles: [{ role: 'readWrite', db: 'avalon' }],
});
