/* ns_test_produce: produces messages with the Kafka timestamps the test
 * chooses, so that a test can lay down past time windows of a log topic
 * (kcat cannot set timestamps). Reads stdin, one message per line:
 *
 *   KEY <TAB> TIMESTAMP_MS <TAB> VALUE
 *
 * VALUE runs to the end of the line; "\n" and "\\" in it are unescaped.
 *
 *   ns_test_produce BROKERS TOPIC < lines
 *
 * Exit 0 once every message is acknowledged, 1 otherwise. A test tool,
 * not part of nightshift. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "ns_test_produce: %s\n", rd_kafka_err2str(m->err));
        failed = 1;
    }
}

static size_t unescape(char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] == '\\' && s[i + 1] == 'n') {
            s[o++] = '\n';
            i++;
        } else if (s[i] == '\\' && s[i + 1] == '\\') {
            s[o++] = '\\';
            i++;
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = '\0';
    return o;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: ns_test_produce BROKERS TOPIC < lines\n");
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ns_test_produce: %s\n", errstr);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "ns_test_produce: %s\n", errstr);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long n = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        char *tab1 = strchr(line, '\t');
        char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (tab2 == NULL) {
            fprintf(stderr, "ns_test_produce: line %ld: KEY TAB TS TAB VALUE\n",
                    n + 1);
            failed = 1;
            break;
        }
        *tab1 = *tab2 = '\0';
        long long ts = strtoll(tab1 + 1, NULL, 10);
        char *value = tab2 + 1;
        size_t vlen = unescape(value);
        rd_kafka_resp_err_t e;
        while (
            (e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]),
                                   RD_KAFKA_V_KEY(line, strlen(line)),
                                   RD_KAFKA_V_VALUE(value, vlen),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                   RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END)) ==
            RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "ns_test_produce: %s\n", rd_kafka_err2str(e));
            failed = 1;
            break;
        }
        rd_kafka_poll(rk, 0);
        n++;
    }
    free(line);
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        failed = 1;
    rd_kafka_destroy(rk);
    return failed ? 1 : 0;
}
