/*  broker_selftest.c — runs sam_broker_selftest(); registered as a unit test. */
#include "sam_broker.h"
#include "sam_log.h"

int main(void)
{
    sam_log_init("broker-selftest", SAM_LOG_ERROR);
    return sam_broker_selftest(true) == 0 ? 0 : 1;
}
