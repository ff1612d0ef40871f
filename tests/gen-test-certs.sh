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
set -euo pipefail
out=${1:?usage: gen-test-certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"
if [[ -f .complete ]]; then exit 0; fi
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
touch .complete
