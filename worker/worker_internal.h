/* worker_internal.h (worker-private): the worker's state shared by the
 * consumer loop (worker.c), the thread pool (pool.c) and the offset and
 * rebalance bookkeeping (dispatch.c). */
#ifndef NS_WORKER_INTERNAL_H
#define NS_WORKER_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "bookkeeper.h"
#include "handler.h"
#include "item.h"
#include "ns/http.h"
#include "ns/httpd.h"
#include "ns/kafka.h"
#include "ns/pgpool.h"
#include "ns/ratelimit.h"
#include "outbox.h"
#include "readyq.h"
#include "retrier.h"
#include "tracker.h"
#include "worker.h"

typedef struct pool_thread {
    pthread_t thread;
    ns_item_res_t res;
    struct ns_worker *w;
} pool_thread_t;

struct ns_worker {
    const ns_config_t *cfg;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    int kafka_pipe[2]; /* librdkafka writes here when messages arrive */
    int done_fd;       /* eventfd: pool threads signal finished tasks */
    ns_tracker_t *tracker;
    ns_pgpool_t *pool;     /* shared by the pool threads */
    ns_bookkeeper_t *bk;   /* their batched bookkeeping */
    ns_bk_stats_t bk_seen; /* its counters when last published */
    rd_kafka_t *producer;  /* retry tiers and the dead-letter topic */
    ns_retry_tier_t tiers[8];
    int n_tiers;
    ns_retrier_t *retrier;
    ns_ratelimit_t *rl; /* shared outbound limits (Redis); NULL: none */
    ns_httpd_t *httpd;
    ns_outbox_t *outbox;

    pthread_mutex_t lock;
    pthread_cond_t work_cond;
    ns_readyq_t *ready;         /* to start, one lane per job, under lock */
    ns_task_t *done_head;       /* finished, under lock */
    ns_http_async_t *http;      /* the HTTP loop, when a job needs it */
    int *http_groups;           /* its group per lane (0: none) */
    ns_http_xfer_t *calls_back; /* back from it, to end; under lock */
    size_t n_calls_back;        /* under lock */
    int pool_stop;
    size_t n_threads;
    pool_thread_t *threads;
    pthread_t sweeper;
    int sweeper_started;

    size_t outstanding; /* consumed and not finished (consumer thread) */
    size_t max_outstanding;
    int assigned;
    size_t n_started;
    int hold_wakeups; /* consumer thread only; read under lock */
    int held_wakeups; /* under lock */
    int abandoned;    /* grace exceeded: do not wait for pool threads */
    volatile sig_atomic_t *running;
};

/* pool.c */
/** The ready queue: a lane per job with its max_in_flight (one per core
 *  for CPU-bound handlers) and batch size. */
ns_readyq_t *pool_ready_new(const ns_config_t *cfg, size_t n_threads);
/** Pool threads: worker.max_in_flight, or a job's larger max_in_flight;
 *  a few when every job's handler is one HTTP request. */
size_t pool_threads_needed(const ns_config_t *cfg);
/** Items in flight at most (any lane). */
size_t pool_in_flight_max(const ns_config_t *cfg);
/** An HTTP-call job's lane limit: max_in_flight calls, and as many again
 *  (up to a batch) begun behind them. */
size_t pool_http_lane_limit(const ns_config_t *cfg, const ns_job_t *job);
/** The HTTP loop's groups: limits[k] for each HTTP-call job (at most
 *  NS_HTTP_GROUPS_MAX), groups[lane] its id (0: none). @returns how many. */
size_t pool_http_limits(const ns_config_t *cfg, size_t *limits, int *groups);
/** Whether h's items are calls on the HTTP loop (calls.h). */
bool pool_http_handler(const ns_handler_def_t *h);
/** Whether a job of cfg has such a handler. */
bool pool_needs_http(const ns_config_t *cfg);
/** The HTTP loop's done callback (arg: the worker). */
void pool_calls_back(void *arg, ns_http_xfer_t *list);
void *pool_main(void *arg);
/** Queues a task for the pool (consumer thread). */
void start_task(ns_worker_t *w, ns_task_t *task);

/* dispatch.c */
void store_offsets(ns_worker_t *w, bool all);
void drop_task(ns_task_t *task);
/** Takes finished tasks: offsets, keys, next tasks. Returns how many. */
int collect_done(ns_worker_t *w);
/** Hands back waiting tasks of parts (NULL: all), waits for running ones
 *  up to grace_ms. Returns 0 if some were still running at the deadline. */
int drain(ns_worker_t *w, const rd_kafka_topic_partition_list_t *parts,
          int64_t grace_ms);
void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                  rd_kafka_topic_partition_list_t *parts, void *opaque);

#endif
