#include "ns/pgpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns/pg.h"

struct ns_pgpool {
    char *dsn;
    int size;
    int opened; /* connections that exist (idle + lent) */
    int n_idle;
    PGconn **idle;
    pthread_mutex_t lock;
    pthread_cond_t freed;
};

ns_pgpool_t *ns_pgpool_new(const char *dsn, int size, ns_error_t *err)
{
    ns_pgpool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL || size < 1) {
        free(pool);
        ns_error_set(err, NS_ERR_INVALID, "pgpool: bad size %d", size);
        return NULL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->freed, NULL);
    pool->dsn = strdup(dsn ? dsn : "");
    pool->size = size;
    pool->idle = calloc((size_t)size, sizeof(PGconn *));
    if (pool->dsn == NULL || pool->idle == NULL) {
        ns_pgpool_destroy(pool);
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return pool;
}

static struct timespec deadline_after(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

PGconn *ns_pgpool_get(ns_pgpool_t *pool, int timeout_ms, ns_error_t *err)
{
    struct timespec until = deadline_after(timeout_ms);
    pthread_mutex_lock(&pool->lock);
    while (pool->n_idle == 0 && pool->opened >= pool->size) {
        if (pthread_cond_timedwait(&pool->freed, &pool->lock, &until) ==
            ETIMEDOUT) {
            pthread_mutex_unlock(&pool->lock);
            ns_error_set(err, NS_ERR_TRANSIENT,
                         "postgres: all %d pooled connections busy",
                         pool->size);
            return NULL;
        }
    }
    PGconn *conn = NULL;
    if (pool->n_idle > 0)
        conn = pool->idle[--pool->n_idle];
    else
        pool->opened++; /* reserve the slot; connect outside the lock */
    pthread_mutex_unlock(&pool->lock);

    if (ns_pg_ensure(&conn, pool->dsn, err) == NS_OK)
        return conn;
    /* Could not connect: give the slot back. */
    pthread_mutex_lock(&pool->lock);
    pool->opened--;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

void ns_pgpool_put(ns_pgpool_t *pool, PGconn *conn)
{
    if (conn == NULL)
        return;
    ns_pg_rollback(conn);
    pthread_mutex_lock(&pool->lock);
    if (PQstatus(conn) == CONNECTION_OK && pool->n_idle < pool->size) {
        pool->idle[pool->n_idle++] = conn;
        conn = NULL;
    } else {
        pool->opened--;
    }
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
    PQfinish(conn);
}

void ns_pgpool_destroy(ns_pgpool_t *pool)
{
    if (pool == NULL)
        return;
    for (int i = 0; i < pool->n_idle; i++)
        PQfinish(pool->idle[i]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
    free(pool->idle);
    free(pool->dsn);
    free(pool);
}
