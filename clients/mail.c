#include "ns/mail.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailfmt.h"
#include "ns/buf.h"
#include "ns/http.h"

#define MAIL_DEFAULT_TIMEOUT_MS 60000L

/* Appends the header built in b to list; b is reset. */
static int take_header(struct curl_slist **list, ns_buf_t *b, ns_err_t rc)
{
    if (rc != NS_OK || b->data == NULL)
        return 0;
    struct curl_slist *next = curl_slist_append(*list, b->data);
    ns_buf_reset(b);
    if (next == NULL)
        return 0;
    *list = next;
    return 1;
}

static struct curl_slist *build_headers(const ns_mail_t *m,
                                        const ns_mail_addr_t *from,
                                        const ns_mail_addr_t *to, size_t n_to)
{
    struct curl_slist *list = NULL;
    ns_buf_t b;
    ns_buf_init(&b, NS_MAILFMT_MAX_HEADER);
    int ok = take_header(&list, &b, ns_mailfmt_add_date(&b)) &&
             take_header(&list, &b, ns_mailfmt_add_message_id(&b, from));
    ns_err_t rc = ns_buf_adds(&b, "From: ");
    if (rc == NS_OK)
        rc = ns_mailfmt_add_mailbox(&b, from);
    ok = ok && take_header(&list, &b, rc);
    rc = ns_buf_adds(&b, "To: ");
    for (size_t i = 0; i < n_to && rc == NS_OK; i++) {
        if (i > 0)
            rc = ns_buf_adds(&b, "," NS_MAILFMT_FOLD);
        if (rc == NS_OK)
            rc = ns_mailfmt_add_mailbox(&b, &to[i]);
    }
    ok = ok && take_header(&list, &b, rc);
    char *subject = ns_mail_encode_subject(m->subject);
    rc = subject ? ns_buf_addf(&b, "Subject: %s", subject) : NS_ERR_NOMEM;
    free(subject);
    ok = ok && take_header(&list, &b, rc);
    ok = ok && take_header(&list, &b, ns_buf_adds(&b, "MIME-Version: 1.0"));
    ns_buf_free(&b);
    if (!ok) {
        curl_slist_free_all(list);
        return NULL;
    }
    return list;
}

static ns_err_t add_attachment(curl_mime *mime, const ns_mail_attachment_t *a,
                               size_t idx, ns_error_t *err)
{
    if (a->data == NULL && a->len > 0)
        return ns_error_set(err, NS_ERR_INVALID,
                            "mail: attachment %zu has no data", idx);
    char *type = NULL, *disposition = NULL;
    ns_err_t rc = ns_mailfmt_attachment_headers(a->filename, a->mime_type,
                                                &type, &disposition, err);
    struct curl_slist *hdr =
        disposition ? curl_slist_append(NULL, disposition) : NULL;
    curl_mimepart *part = hdr ? curl_mime_addpart(mime) : NULL;
    if (rc == NS_OK &&
        (part == NULL || curl_mime_headers(part, hdr, 1) != CURLE_OK)) {
        curl_slist_free_all(hdr);
        rc = ns_error_set(err, NS_ERR_NOMEM, "mail: out of memory");
    }
    if (rc == NS_OK &&
        (curl_mime_data(part, a->data ? a->data : "", a->len) != CURLE_OK ||
         curl_mime_type(part, type) != CURLE_OK ||
         curl_mime_encoder(part, "base64") != CURLE_OK))
        rc = ns_error_set(err, NS_ERR_NOMEM, "mail: out of memory");
    free(type);
    free(disposition);
    return rc;
}

static curl_mime *build_mime(CURL *curl, const ns_mail_t *m, const char *body,
                             size_t body_len, ns_error_t *err)
{
    curl_mime *mime = curl_mime_init(curl);
    curl_mimepart *part = mime ? curl_mime_addpart(mime) : NULL;
    if (part == NULL || curl_mime_data(part, body, body_len) != CURLE_OK ||
        curl_mime_type(part, "text/plain; charset=UTF-8") != CURLE_OK ||
        curl_mime_encoder(part, "quoted-printable") != CURLE_OK) {
        curl_mime_free(mime);
        ns_error_set(err, NS_ERR_NOMEM, "mail: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < m->n_attachments; i++) {
        if (add_attachment(mime, &m->attachments[i], i, err) != NS_OK) {
            curl_mime_free(mime);
            return NULL;
        }
    }
    return mime;
}

/* ---- the SMTP transaction ---------------------------------------------- */

typedef struct smtp_call {
    char reply[256]; /**< the server's last 4xx/5xx line, for messages */
} smtp_call_t;

/* Keeps the server's last error reply. Only CURLINFO_HEADER_IN is read:
 * what we send (AUTH lines carry the password) is never looked at. */
static int on_debug(CURL *curl, curl_infotype type, char *data, size_t size,
                    void *arg)
{
    smtp_call_t *call = arg;
    /* Only 4xx/5xx lines: the QUIT that follows a failure answers 221. */
    if (type != CURLINFO_HEADER_IN || size == 0 ||
        (data[0] != '4' && data[0] != '5'))
        return 0;
    while (size > 0 && (data[size - 1] == '\r' || data[size - 1] == '\n'))
        size--;
    if (size == 0)
        return 0;
    size_t n = size < sizeof(call->reply) - 1 ? size : sizeof(call->reply) - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        call->reply[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    call->reply[n] = '\0';
    return 0;
}

static int is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
           strncmp(host, "127.", 4) == 0;
}

/* Validates the URL and TLS mode; writes "scheme://host:port" to where. */
static ns_err_t check_server(const ns_mail_server_t *srv, long *use_ssl,
                             char *where, size_t wlen, ns_error_t *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
    ns_err_t rc = NS_OK;
    if (u == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "mail: out of memory");
    if (curl_url_set(u, CURLUPART_URL, srv->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = ns_error_set(err, NS_ERR_INVALID,
                          "mail: server url is not smtp://host:port or "
                          "smtps://host:port");
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    snprintf(where, wlen, "%s://%s:%s", scheme, host, port ? port : "?");
    int smtps = strcmp(scheme, "smtps") == 0;
    if (!smtps && strcmp(scheme, "smtp") != 0)
        rc = ns_error_set(err, NS_ERR_INVALID,
                          "mail: %s: only smtp:// and smtps:// are supported",
                          where);
    else if (user != NULL)
        rc = ns_error_set(err, NS_ERR_INVALID,
                          "mail: %s: credentials belong in user/password, "
                          "not in the url",
                          where);
    else if (!smtps && srv->starttls == NS_MAIL_TLS_NONE && !is_loopback(host))
        rc = ns_error_set(err, NS_ERR_INVALID,
                          "mail: %s: plain SMTP without STARTTLS is only "
                          "allowed to a loopback host",
                          where);
    else if (srv->starttls < NS_MAIL_TLS_NONE ||
             srv->starttls > NS_MAIL_TLS_REQUIRED)
        rc = ns_error_set(err, NS_ERR_INVALID, "mail: %s: starttls %d?", where,
                          srv->starttls);
    if (smtps || srv->starttls == NS_MAIL_TLS_REQUIRED)
        *use_ssl = (long)CURLUSESSL_ALL;
    else if (srv->starttls == NS_MAIL_TLS_TRY)
        *use_ssl = (long)CURLUSESSL_TRY;
    else
        *use_ssl = (long)CURLUSESSL_NONE;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

/* 4xx replies, refused connections, timeouts and lost links are worth
 * another try; 5xx replies, refused logins and certificates that do not
 * verify are not (they need a person to change something). */
static ns_err_t classify(CURLcode rc, long reply)
{
    switch (rc) {
    case CURLE_OK: return NS_OK;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return NS_ERR_INVALID;
    case CURLE_OUT_OF_MEMORY: return NS_ERR_NOMEM;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_USE_SSL_FAILED: return NS_ERR_PERMANENT;
    case CURLE_LOGIN_DENIED:
        return reply >= 400 && reply < 500 ? NS_ERR_TRANSIENT
                                           : NS_ERR_PERMANENT;
    default: break;
    }
    return reply >= 500 && reply < 600 ? NS_ERR_PERMANENT : NS_ERR_TRANSIENT;
}

static void mask_secret(char *msg, const char *secret)
{
    size_t slen = secret ? strlen(secret) : 0;
    char *hit = slen >= 4 ? strstr(msg, secret) : NULL;
    while (hit != NULL) {
        memcpy(hit, "***", 3);
        memmove(hit + 3, hit + slen, strlen(hit + slen) + 1);
        hit = strstr(hit + 3, secret);
    }
}

static void set_options(CURL *curl, const ns_mail_server_t *srv, long use_ssl,
                        smtp_call_t *call, char *errbuf)
{
    long timeout_ms =
        srv->timeout_ms > 0 ? srv->timeout_ms : MAIL_DEFAULT_TIMEOUT_MS;
    const char *ca_file = getenv("NS_SMTP_CA_FILE");
    curl_easy_setopt(curl, CURLOPT_URL, srv->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_USE_SSL, use_ssl);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file != NULL && ca_file[0] != '\0')
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
    if (srv->user != NULL && srv->user[0] != '\0') {
        curl_easy_setopt(curl, CURLOPT_USERNAME, srv->user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD,
                         srv->password ? srv->password : "");
    }
    curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(curl, CURLOPT_DEBUGDATA, call);
}

static struct curl_slist *envelope_rcpts(const ns_mail_addr_t *to, size_t n_to)
{
    struct curl_slist *list = NULL;
    char line[sizeof(to->addr) + 2];
    for (size_t i = 0; i < n_to; i++) {
        snprintf(line, sizeof(line), "<%s>", to[i].addr);
        struct curl_slist *next = curl_slist_append(list, line);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

static ns_err_t perform(const ns_mail_server_t *srv, long use_ssl,
                        const char *where, const ns_mail_t *m,
                        const ns_mail_addr_t *from, const ns_mail_addr_t *to,
                        size_t n_to, ns_error_t *err)
{
    size_t body_len = 0;
    char *body = ns_mailfmt_body_crlf(m->text, &body_len);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = build_headers(m, from, to, n_to);
    struct curl_slist *rcpts = envelope_rcpts(to, n_to);
    curl_mime *mime = NULL;
    ns_err_t code = NS_ERR_NOMEM;
    if (body == NULL || curl == NULL || headers == NULL || rcpts == NULL)
        ns_error_set(err, NS_ERR_NOMEM, "mail: out of memory");
    else
        mime = build_mime(curl, m, body, body_len, err);
    if (mime != NULL) {
        char errbuf[CURL_ERROR_SIZE] = "";
        char mail_from[sizeof(from->addr) + 2];
        smtp_call_t call = {.reply = ""};
        snprintf(mail_from, sizeof(mail_from), "<%s>", from->addr);
        set_options(curl, srv, use_ssl, &call, errbuf);
        curl_easy_setopt(curl, CURLOPT_MAIL_FROM, mail_from);
        curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpts);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
        CURLcode rc = curl_easy_perform(curl);
        long reply = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply);
        code = classify(rc, reply);
        if (err != NULL)
            err->http_status = reply;
        if (code != NS_OK) {
            const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
            ns_error_set(err, code, "mail %s: %s%s%s%s", where, detail,
                         reply >= 400 ? " (server said \"" : "",
                         reply >= 400 ? call.reply : "",
                         reply >= 400 ? "\")" : "");
            if (err != NULL)
                mask_secret(err->msg, srv->password);
        }
    }
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    curl_slist_free_all(rcpts);
    curl_easy_cleanup(curl);
    free(body);
    return code;
}

ns_err_t ns_mail_send(const ns_mail_server_t *srv, const ns_mail_t *m,
                      ns_error_t *err)
{
    ns_error_clear(err);
    if (srv == NULL || srv->url == NULL || srv->url[0] == '\0')
        return ns_error_set(err, NS_ERR_INVALID, "mail: no server url");
    if (m == NULL || m->to == NULL || m->to[0] == NULL)
        return ns_error_set(err, NS_ERR_PERMANENT, "mail: no recipient");
    if (m->attachments == NULL && m->n_attachments > 0)
        return ns_error_set(err, NS_ERR_INVALID, "mail: attachments is NULL");
    char where[512];
    long use_ssl = 0;
    ns_err_t code = check_server(srv, &use_ssl, where, sizeof(where), err);
    if (code != NS_OK)
        return code;

    size_t n_to = 0;
    while (m->to[n_to] != NULL)
        n_to++;
    ns_mail_addr_t from, *to = calloc(n_to, sizeof(*to));
    if (to == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "mail: out of memory");
    code = ns_mail_parse_address(m->from, &from, err);
    for (size_t i = 0; i < n_to && code == NS_OK; i++)
        code = ns_mail_parse_address(m->to[i], &to[i], err);
    if (code == NS_OK) {
        ns_http_global_init();
        code = perform(srv, use_ssl, where, m, &from, to, n_to, err);
    }
    free(to);
    return code;
}
