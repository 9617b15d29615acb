/* GET /metrics: the Prometheus exposition of common/metrics.c, to the addresses METRICS_ALLOW names. */
#include "../common/metrics.h"
#include "handlers.h"

void
ac_h_metrics(struct ac_ctx *c, const struct ac_str *args)
{
	(void)args;
	/* Off, or asked from elsewhere: as if there were no such route. */
	if (!ac_metrics_on() || !ac_metrics_allowed(c->req.remote_addr)) {
		ac_resp_error(c, 404, "Not Found");
		return;
	}
	ac_resp_start(c, 200);
	c->resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
	ac_resp_header(c, "Cache-Control", "no-store");
	ac_metrics_write(&c->resp.body);
}
