# shellcheck shell=sh
# self_signed_cert CN CERT KEY: a self-signed P-256 certificate for CN (also as its DNS name),
# valid 2 days. Sourced by lib.sh for the tests and by bench/serving.sh. Prints nothing;
# fails if openssl does.
self_signed_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$1" \
        -addext "subjectAltName=DNS:$1" -keyout "$3" -out "$2" >/dev/null 2>&1
}
