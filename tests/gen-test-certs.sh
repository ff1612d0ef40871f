#!/usr/bin/env bash
# Generates the throwaway test PKI used by the test suite (never committed):
#   ca.pem/ca.key            test root CA
#   server.pem/.key          localhost, 127.0.0.1, ::1; serverAuth; signed by ca
#   wrongname.pem/.key       only db.example.net; signed by ca
#   expired.pem/.key         localhost, valid 2020-01-01..2021-01-01; signed by ca
#   notyet.pem/.key          localhost, valid from 2099; signed by ca
#   selfsigned.pem/.key      localhost, self-signed (not under ca)
#   clientauth-only.pem/.key localhost with EKU clientAuth only; signed by ca
#   other-ca.pem             an unrelated CA (for "untrusted" tests)
#   client-ca.pem            CA that issues client certificates
#   client.pem, client.key   client certificate; client.key is AES-256 encrypted
#   client.pass              its password; wrong.pass a wrong one
#   proxy.pem/.key           dbward's own server certificate for clients, signed by ca
#   app-client.pem/.key      client certificate (unencrypted key) from client-ca: CN=report-reader,
#                            URI:spiffe://dbward.test/ns/reports/sa/reader, DNS:reader.apps.test
#   intruder-client.pem/.key client certificate from client-ca: CN=intruder
#   rogue-client.pem/.key    CN=report-reader, but from other-ca
#   revoked.pem/.key         localhost server certificate from ca, revoked in ca.crl
#   ca.crl                   ca's CRL listing revoked.pem; ca-clean.crl revokes nothing;
#                            ca-stale.crl expired (nextUpdate in the past)
#   server.spki, wrongname.spki  base64 SHA-256 SPKI pins of those certificates
set -euo pipefail
out=${1:?usage: gen-test-certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"
# Bump when the set of files changes, so existing build trees regenerate.
version=2
if [[ -f .complete && $(cat .complete) == "$version" ]]; then exit 0; fi
rm -rf ./* .ca 2>/dev/null || true

days=30
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

mkca() {  # name subject
  ec "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 365 -subj "$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

# sign NAME CA SUBJECT EXTFILE-CONTENT [startdate enddate]
sign() {
  local name=$1 ca=$2 subj=$3 ext=$4
  ec "$name.key"
  openssl req -new -key "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  printf '%b\n' "$ext" > "$name.ext"
  if [[ $# -ge 6 ]]; then
    # 'openssl ca' is the only stock way to set explicit validity dates.
    mkdir -p .ca && : > .ca/index.txt && echo 1000 > .ca/serial
    cat > .ca/ca.cnf <<CNF
[ca]
default_ca = d
[d]
dir = .ca
database = .ca/index.txt
serial = .ca/serial
new_certs_dir = .ca
default_md = sha256
policy = p
unique_subject = no
copy_extensions = none
[p]
commonName = supplied
CNF
    openssl ca -batch -notext -config .ca/ca.cnf -cert "$ca.pem" -keyfile "$ca.key" \
      -startdate "$5" -enddate "$6" -extfile "$name.ext" -in "$name.csr" -out "$name.pem" 2>/dev/null
  else
    openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial \
      -days $days -sha256 -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  fi
  rm -f "$name.csr" "$name.ext"
}

server_ext='subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature'

mkca ca "/O=dbward tests/CN=dbward Test Root CA"
mkca other-ca "/O=Somebody Else/CN=Unrelated CA"
mkca client-ca "/O=dbward tests/CN=dbward Test Client CA"

sign server ca "/CN=localhost" "$server_ext"
sign proxy ca "/CN=localhost" "$server_ext"
sign wrongname ca "/CN=db.example.net" 'subjectAltName=DNS:db.example.net\nextendedKeyUsage=serverAuth'
sign expired ca "/CN=localhost" "$server_ext" 20200101000000Z 20210101000000Z
sign notyet ca "/CN=localhost" "$server_ext" 20990101000000Z 20991231000000Z
sign clientauth-only ca "/CN=localhost" 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=clientAuth'
sign client client-ca "/CN=dbward-client" 'extendedKeyUsage=clientAuth'

sign app-client client-ca "/CN=report-reader" \
  'subjectAltName=URI:spiffe://dbward.test/ns/reports/sa/reader,DNS:reader.apps.test\nextendedKeyUsage=clientAuth'
sign intruder-client client-ca "/CN=intruder" 'extendedKeyUsage=clientAuth'
sign rogue-client other-ca "/CN=report-reader" 'extendedKeyUsage=clientAuth'
sign revoked ca "/CN=localhost" "$server_ext"

# CRLs of ca: one revoking revoked.pem, one revoking nothing, one expired.
crl() {  # out [extra openssl ca options...]
  local out=$1
  shift
  openssl ca -gencrl -config .crl/crl.cnf -cert ca.pem -keyfile ca.key -out "$out" "$@" 2>/dev/null
}
mkdir -p .crl && : > .crl/index.txt && echo 01 > .crl/crlnumber
cat > .crl/crl.cnf <<CNF
[ca]
default_ca = d
[d]
database = .crl/index.txt
crlnumber = .crl/crlnumber
default_md = sha256
default_crl_days = 30
CNF
crl ca-clean.crl
crl ca-stale.crl -crl_lastupdate 20200101000000Z -crl_nextupdate 20200201000000Z
openssl ca -config .crl/crl.cnf -cert ca.pem -keyfile ca.key -revoke revoked.pem 2>/dev/null
crl ca.crl

spki() { openssl x509 -in "$1.pem" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64; }
spki server > server.spki
spki wrongname > wrongname.spki

ec selfsigned.key
openssl req -x509 -new -key selfsigned.key -out selfsigned.pem -days $days -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

# Encrypt the client key (PKCS#8, AES-256-CBC) with a password file.
printf 'correct horse battery staple\n' > client.pass
printf 'not the password\n' > wrong.pass
openssl pkcs8 -topk8 -v2 aes-256-cbc -in client.key -out client.enc.key -passout file:client.pass
mv client.enc.key client.key
# A traditional-format encrypted key too (Proc-Type: 4,ENCRYPTED).
openssl ec -in server.key -aes256 -passout file:client.pass -out server.trad-enc.key 2>/dev/null

chmod 600 ./*.key
echo "$version" > .complete
