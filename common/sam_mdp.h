/*  sam_mdp.h — ZeroMQ RFC 7/MDP (Majordomo 0.1) and 8/MMI constants, and samordna's
    negotiated extensions. docs/protocol.md describes every frame.

    Client  → broker: [""] "MDPC01" service body
    Broker  → client: [""] "MDPC01" service body
    Worker ↔ broker:  ""   "MDPW01" command ...

    Extension (samordna, optional): a worker appends one frame to READY:
        "x-samordna/1 credit=N identity batch"
    and our broker answers with a HEARTBEAT carrying the accepted set in the same form,
    before it sends any REQUEST. Until that answer arrives a worker must assume a plain
    7/MDP broker. With "identity" accepted, each REQUEST carries one extra frame, a packed
    samordna.v1.Caller, between the empty delimiter and the body:
        "" "MDPW01" 0x02 client "" caller body
    With "batch" accepted, REQUEST and REPLY carry one samordna.v1.Batch frame of one or
    more items instead (sam_batch.h):
        "" "MDPW01" 0x02 Batch      "" "MDPW01" 0x03 Batch
    A worker also names itself ("instance=NAME version=V") and its part across hosts
    ("epoch=N", and "standby" for a standby): the broker sends writes only to a non-standby
    worker of the service's highest epoch (docs/protocol.md, "Primaries and standbys"). A
    worker whose part changes sends DISCONNECT, then READY anew.
*/
#ifndef SAM_MDP_H
#define SAM_MDP_H

#define SAM_MDPC "MDPC01"
#define SAM_MDPW "MDPW01"

enum {
    SAM_MDPW_READY = 0x01,
    SAM_MDPW_REQUEST = 0x02,
    SAM_MDPW_REPLY = 0x03,
    SAM_MDPW_HEARTBEAT = 0x04,
    SAM_MDPW_DISCONNECT = 0x05,
};

/* Prefix of the extension frame in READY and in the broker's answering HEARTBEAT. */
#define SAM_MDP_EXT_PREFIX "x-samordna/1"

/* Defaults shared by broker and workers (milliseconds). */
#define SAM_MDP_HEARTBEAT_MS 2500
#define SAM_MDP_LIVENESS 3

/* Largest credit a worker may declare; the broker clamps to this. */
#define SAM_MDP_MAX_CREDIT 1024

#endif
