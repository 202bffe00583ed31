# shellcheck shell=bash
# The secured mode of kafka.sh (KAFKA_SECURITY=sasl_ssl), sourced by it: a private CA
# made with openssl, TLS listeners, SCRAM users created when the storage is formatted,
# KRaft's StandardAuthorizer denying whatever no ACL allows, and one file of client
# settings per user. Everything lives in the broker's data dir and goes with `down`.
#
# Listeners (all on 127.0.0.1):
#   SASL_SSL on $KAFKA_PORT   clients: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN, over TLS
#   MTLS     on a free port   clients: TLS with a client certificate (mutual TLS); the
#                             certificate's CN is the user (CN=worker is User:worker)
#   CONTROLLER                the KRaft controller, mutual TLS (the broker's own
#                             certificate); MTLS also carries the broker's own requests
#
# Files written under <data dir>:
#   tls/ca.pem                the CA every client must trust (ARBSTREAM_KAFKA_SSL_CAFILE)
#   tls/<user>.pem, .key      each user's client certificate and key (mutual TLS)
#   secrets/<user>.password   each user's password (mode 600)
#   clients/<user>.env        ARBSTREAM_* settings for SASL_SSL, the password by file
#   clients/<user>-mtls.env   ARBSTREAM_* settings for mutual TLS on the MTLS port
#   clients/<user>.properties the same user for Kafka's own Java tools (--command-config)
#
# Users: $KAFKA_USERS (default "admin feed worker gateway faust nobody"); admin is the
# super user, the others may do nothing until ACLs are granted (docs/deploy.md).

SECURITY=${KAFKA_SECURITY:-plaintext}
case "$SECURITY" in
plaintext | sasl_ssl) ;;
*) die "KAFKA_SECURITY must be plaintext or sasl_ssl, got '$SECURITY'" ;;
esac
USERS=${KAFKA_USERS:-admin feed worker gateway faust nobody}
SUPER_USER=admin
#: Days the CA and the certificates are valid: a test broker's life, with margin.
CERT_DAYS=30

secured() { [[ "$SECURITY" == sasl_ssl ]]; }

# new_key FILE: an EC P-256 private key in PKCS#8 PEM (fast to make; Kafka's PEM
# keystore and Python's ssl both read it)
new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 600 "$1"
}

# sign DIR NAME EXTENSIONS: a certificate for CN=NAME signed by DIR's CA
sign() {
    local dir=$1 name=$2 ext=$3
    new_key "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr" 2>/dev/null
    printf '%b\n' "$ext" >"$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days "$CERT_DAYS" -extfile "$dir/$name.ext" \
        -out "$dir/$name.pem" 2>/dev/null || die "openssl could not sign $name's certificate"
    rm -f "$dir/$name.csr" "$dir/$name.ext"
}

make_tls() {
    local dir=$1/tls user
    command -v openssl >/dev/null || die "openssl not found (needed for KAFKA_SECURITY=sasl_ssl)"
    mkdir -p "$dir"
    new_key "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=arbstream test CA $PORT" \
        -days "$CERT_DAYS" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem" 2>/dev/null ||
        die "openssl could not make the CA"
    # the broker's certificate names the address clients dial: hostname verification on
    sign "$dir" broker "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth"
    cat "$dir/broker.key" "$dir/broker.pem" >"$dir/broker-keystore.pem"
    chmod 600 "$dir/broker-keystore.pem"
    for user in $USERS; do
        sign "$dir" "$user" "extendedKeyUsage=clientAuth"
    done
}

make_passwords() {
    local dir=$1/secrets user
    mkdir -p "$dir"
    chmod 700 "$dir"
    for user in $USERS; do
        (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$dir/$user.password")
    done
}

password_of() { cat "$1/secrets/$2.password"; }

# The format tool's --add-scram arguments: every user, both SCRAM mechanisms.
scram_args() {
    local data_dir=$1 user pw
    for user in $USERS; do
        pw=$(password_of "$data_dir" "$user")
        printf -- '--add-scram\nSCRAM-SHA-512=[name=%s,password=%s]\n' "$user" "$pw"
        printf -- '--add-scram\nSCRAM-SHA-256=[name=%s,password=%s]\n' "$user" "$pw"
    done
}

# The listener lines of server.properties, plain or secured.
listener_config() {
    local data_dir=$1 cport=$2 mport=$3 user plain_users=""
    if ! secured; then
        cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
        return
    fi
    for user in $USERS; do
        plain_users+=" user_$user=\"$(password_of "$data_dir" "$user")\""
    done
    cat <<EOF
listeners=SASL_SSL://127.0.0.1:$PORT,MTLS://127.0.0.1:$mport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$PORT,MTLS://127.0.0.1:$mport
controller.listener.names=CONTROLLER
inter.broker.listener.name=MTLS
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL,MTLS:SSL
ssl.keystore.type=PEM
ssl.keystore.location=$data_dir/tls/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$data_dir/tls/ca.pem
listener.name.controller.ssl.client.auth=required
listener.name.mtls.ssl.client.auth=required
# a client certificate's CN is its user name (CN=worker is User:worker)
ssl.principal.mapping.rules=RULE:^CN=([a-zA-Z0-9._-]+)\$/\$1/,DEFAULT
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:$SUPER_USER;User:broker
EOF
}

write_client_files() {
    local data_dir=$1 mport=$2 dir=$1/clients user pw
    mkdir -p "$dir"
    chmod 700 "$dir"
    for user in $USERS; do
        pw=$(password_of "$data_dir" "$user")
        cat >"$dir/$user.env" <<EOF
ARBSTREAM_BROKER=kafka://127.0.0.1:$PORT
ARBSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_SSL
ARBSTREAM_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
ARBSTREAM_KAFKA_SASL_USERNAME=$user
ARBSTREAM_KAFKA_SASL_PASSWORD_FILE=$data_dir/secrets/$user.password
ARBSTREAM_KAFKA_SSL_CAFILE=$data_dir/tls/ca.pem
EOF
        cat >"$dir/$user-mtls.env" <<EOF
ARBSTREAM_BROKER=kafka://127.0.0.1:$mport
ARBSTREAM_KAFKA_SECURITY_PROTOCOL=SSL
ARBSTREAM_KAFKA_SSL_CAFILE=$data_dir/tls/ca.pem
ARBSTREAM_KAFKA_SSL_CERTFILE=$data_dir/tls/$user.pem
ARBSTREAM_KAFKA_SSL_KEYFILE=$data_dir/tls/$user.key
EOF
        (
            umask 077
            cat >"$dir/$user.properties" <<EOF
bootstrap.servers=127.0.0.1:$PORT
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$user" password="$pw";
ssl.truststore.type=PEM
ssl.truststore.location=$data_dir/tls/ca.pem
EOF
        )
    done
}

# The probe's and the Java tools' connection settings for the broker of data dir $1:
# nothing, or (a secured broker's) the super user's.
admin_command_config() {
    local file="$1/clients/$SUPER_USER.properties"
    if [[ -f "$file" ]]; then printf -- '--command-config\n%s\n' "$file"; fi
}
