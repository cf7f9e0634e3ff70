/*
 * The IOTLB snapshot and invalidation protocol of dmaworks, as implemented
 * (see ARCHITECTURE.md, "Model of the invalidation protocol", for the mapping
 * from every process and variable here to the code).
 *
 * Bounds: W device workers, one IOVA page, P physical pages, REMAPS remaps.
 * The guest remaps the IOVA to a fresh page, invalidates, waits for
 * COMPLETION_WAIT and then poisons the old page. Workers translate through
 * their local cache, the shared snapshot (a seqlock-guarded entry whose
 * physical address is written in two halves, so a reader can observe a torn
 * value) or a miss request to main, and copy; they may also hold a live
 * mapping (a pin) across steps. Main (two processes: the command processor
 * and the miss server, both on the main isolate) removes snapshot entries,
 * bumps each worker's generation, sends the invalidation message, and waits
 * for acknowledgements or, on InvTimeOut, terminates the worker.
 *
 * Mutants (compile with -D…): each must make verification fail.
 *   SKIP_ACK        COMPLETION_WAIT does not wait for acknowledgements
 *   NO_SEQLOCK      the worker uses snapshot fields without the sequence check
 *   BUMP_FIRST      main bumps the generation before removing the entry
 *   ACK_WITH_PIN    the worker acknowledges while a covered mapping is live
 *   NO_GRACE        after terminating a worker, main does not wait for its
 *                   transaction in progress
 *   NO_CLEAR        the worker acknowledges without dropping its cached translations
 *   CHECK_LATE      the generation check runs after the translation is taken
 *                   (before the copy)
 *   NO_TIMEOUT      COMPLETION_WAIT has no timeout path: a hung worker hangs it
 *
 * CHECK_AFTER (the generation check after the copy) is kept as a variant
 * that must pass: see ARCHITECTURE.md for why it is safe here.
 */

#ifndef W
#define W 2
#endif
#define P (REMAPS + 2)
#ifndef REMAPS
#define REMAPS 2
#endif
/* Actions per worker (transactions, mapping operations): keeps the state space finite. */
#ifndef STEPS
#define STEPS 4
#endif

/* The guest's page table: the IOVA maps to physical page pte. */
byte pte = 1;         /* pages 1, 2, …: a torn high/low read can name page 0 or 3 */
bool poisoned[P];

/* Shared snapshot, one entry per worker (its translation of the IOVA). */
byte sseq[W];          /* seqlock word: odd while main rewrites the entry */
bool svalid[W];
byte shi[W];           /* physical page, high bit */
byte slo[W];           /* physical page, low bit */
byte gphys[W];         /* ghost: the value main last published whole */

/* Per-worker control words. */
byte reqGen[W];        /* INV_REQ_GEN: written by main */
byte ackGen[W];        /* INV_ACK_GEN: written by the worker */
bool alive[W];         /* false once main terminated the worker */
bool terminated[W];       /* the worker has certainly stopped (termination took effect) */

/* The IOMMU MessageChannel of each worker: invalidation generations. */
chan inval[W] = [REMAPS] of { byte };
/* Miss mailbox: requests carry the worker id; answers carry the page. */
chan missReq = [W] of { byte };
chan missResp[W] = [1] of { byte };
/* Prefetch hints (a device's hint or the guest's PREFETCH_IOMMU_PAGES): main
 * fills the entry later while the worker keeps reading its snapshot. */
chan prefetchReq = [W] of { byte };
/* Guest -> command processor: one invalidation + COMPLETION_WAIT per remap. */
chan command = [1] of { byte };

byte cwIssued = 0;
byte cwDone = 0;
bool guestDone = false;

/* The main isolate is one thread: its two processes here never interleave
 * inside a task (a task runs to completion); workers and the guest run
 * concurrently with both. */
bool mainBusy = false;

/* SnapshotWriter.insert: sequence odd, the fields one at a time (the physical
 * address in two halves), sequence even. Steps that no reader can tell apart
 * are grouped; a reader can still see the halves of two different values. */
inline publish(w, v) {
  atomic { sseq[w] = sseq[w] + 1; svalid[w] = true; slo[w] = v % 2 };
  shi[w] = v / 2;
  atomic { gphys[w] = v; sseq[w] = sseq[w] + 1 }
}

/* SnapshotWriter.remove: a reader that overlaps it sees the sequence change
 * or the entry invalid, and misses either way, so one step suffices. */
inline withdraw(w) {
  d_step { sseq[w] = sseq[w] + 2; svalid[w] = false }
}

proctype MissServer() {
  byte w;
  byte v;
end_idle:
  do
  :: atomic { !mainBusy && nempty(missReq) -> missReq ? w; mainBusy = true };
       /* Walk the current table, publish the page, answer (one task). */
       v = pte;
       publish(w, v);
       atomic { missResp[w] ! v; mainBusy = false; w = 0; v = 0 }
  :: atomic { !mainBusy && nempty(prefetchReq) -> prefetchReq ? w; mainBusy = true };
       if
       :: alive[w] -> v = pte; publish(w, v)
       :: else -> skip
       fi;
       atomic { mainBusy = false; w = 0; v = 0 }
  od
}

proctype CommandProcessor() {
  byte w, gen;
end_idle:
  do
  :: atomic { !mainBusy && nempty(command) -> command ? gen; mainBusy = true };
       /* INVALIDATE: for every worker, remove the entry, bump, send (one task). */
       w = 0;
       do
       :: w < W ->
            if
            :: alive[w] ->
#ifdef BUMP_FIRST
                 reqGen[w] = gen; withdraw(w); inval[w] ! gen
#else
                 /* remove the entries, then bump the generation and post the
                  * message (the worker reads either whenever it likes) */
                 withdraw(w); atomic { reqGen[w] = gen; inval[w] ! gen }
#endif
            :: else -> skip
            fi;
            w++
       :: else -> break
       od;
       mainBusy = false;
       /* COMPLETION_WAIT: every acknowledgement first (or the timeout path);
        * main awaits, so misses are served meanwhile. */
#ifndef SKIP_ACK
       w = 0;
       do
       :: w < W ->
            if
            :: ackGen[w] == gen || !alive[w] -> skip
#ifndef NO_TIMEOUT
            :: alive[w] ->
                 /* InvTimeOut expired: terminate the worker. Termination
                  * takes effect at its next interrupt check, so a step it has
                  * begun (a copy) still completes: main waits a grace period
                  * longer than any such step before completing. */
                 alive[w] = false;
#ifndef NO_GRACE
                 terminated[w]
#else
                 skip
#endif
#endif
            fi;
            w++
       :: else -> break
       od;
#endif
       atomic { cwDone = gen; w = 0; gen = 0 }
  od
}

proctype Guest() {
  byte old, round = 0;
  do
  :: round < REMAPS ->
       atomic {
         old = pte;
         pte = old + 1;             /* a fresh page, never poisoned before */
         cwIssued = round + 1;
         command ! round + 1
       };
       atomic {
         cwDone == round + 1 ->     /* poll the completion store */
         poisoned[old] = true;      /* reuse the old page */
         round++
       }
  :: else -> break
  od;
  guestDone = true
}

/*
 * SnapshotMmu.#catchUp: a new generation drops every cached translation;
 * then acknowledge unless a mapping made before the generation is covered
 * by it (known from the messages) and not yet released. The worker reads
 * INV_REQ_GEN once and acknowledges that value, so the decision is one step.
 */
#ifndef ACK_WITH_PIN
#define PIN_BLOCKS (pinned && pinGen < seen && (msgGen < seen || pinNotified))
#else
#define PIN_BLOCKS false
#endif
#ifndef NO_CLEAR
#define DROP_CACHE cached = false
#else
#define DROP_CACHE skip
#endif
#define CATCH_UP \
  atomic { \
    if :: reqGen[w] != seen -> DROP_CACHE; seen = reqGen[w] :: else -> skip fi; \
    if :: ackGen[w] != seen && !PIN_BLOCKS -> ackGen[w] = seen :: else -> skip fi \
  }

/* Where a transaction checks the generation: first (as implemented), after
 * taking the translation (CHECK_LATE), or after the copy (CHECK_AFTER). */
#if defined(CHECK_LATE)
#define AT_FIRST skip
#define AT_LATE CATCH_UP
#define AT_AFTER skip
#elif defined(CHECK_AFTER)
#define AT_FIRST skip
#define AT_LATE skip
#define AT_AFTER CATCH_UP
#else
#define AT_FIRST CATCH_UP
#define AT_LATE skip
#define AT_AFTER skip
#endif

/* SnapshotMmu.translate: the local cache, else the snapshot entry under its
 * seqlock, else a miss request answered by main; the result is cached. */
#ifndef NO_SEQLOCK
#define STABLE (s1 == s2 && s1 % 2 == 0 && svalid[w])
#else
#define STABLE svalid[w]
#endif
inline TRANSLATE() {
  if
  :: cached -> phys = cphys
  :: else ->
       /* SnapshotReader.lookup: sequence, the halves, sequence again; a writer
        * step between the two halves is what makes a read torn. */
       atomic { s1 = sseq[w]; hi = shi[w] };
       atomic {
         lo = slo[w];
         s2 = sseq[w];
         if
         :: STABLE ->
              phys = hi * 2 + lo;
              assert(phys == gphys[w]);   /* no torn translation is ever used */
              ok = true
         :: else -> skip
         fi;
         s1 = 0; s2 = 0; hi = 0; lo = 0
       };
       if
       :: !ok -> missReq ! w; missResp[w] ? phys
       :: else -> skip
       fi;
       atomic { cached = true; cphys = phys; ok = false }
  fi
}

proctype Worker(byte w) {
  byte seen = 0;           /* the generation last looked at */
  byte msgGen = 0;         /* the newest invalidation message handled */
  bool cached = false;     /* the local cache holds the translation */
  byte cphys;
  byte phys, s1, s2, hi, lo;
  bool ok;
  bool pinned = false;     /* a live mapping */
  byte pinPhys, pinGen;
  bool pinNotified = false;
  byte budget = STEPS;

end_idle:
  do
  /* ---- one DMA transaction (beginTransaction … endTransaction) ---- */
  :: budget > 0 && alive[w] ->
       budget--;
       /* beginTransaction: a new generation drops the cache, then ack if allowed. */
       AT_FIRST;
       TRANSLATE();
       AT_LATE;
       /* the copy: it may span steps; both ends must be legal (invariant 1) */
       assert(!poisoned[phys]);
       assert(!poisoned[phys]);
       AT_AFTER;
       phys = 0

  /* ---- an invalidation message arrives (between transactions) ---- */
  :: atomic {
       alive[w] && nempty(inval[w]) ->
       inval[w] ? msgGen;
       if
       :: pinned && pinGen < msgGen -> pinNotified = true   /* the callback runs */
       :: else -> skip
       fi;
       CATCH_UP
     }

  /* ---- DmaContext.map: a transaction that translates and pins the result ---- */
  :: budget > 0 && alive[w] && !pinned ->
       budget--;
       AT_FIRST;
       TRANSLATE();
       AT_LATE;
       atomic { pinned = true; pinPhys = phys; pinGen = seen; pinNotified = false };
       AT_AFTER;
       phys = 0

  /* ---- a prefetch hint (SnapshotMmu.prefetch): does not wait ---- */
  :: atomic { budget > 0 && alive[w] && !cached && nfull(prefetchReq) -> budget--; prefetchReq ! w }

  /* ---- the holder uses the mapping: synchronously, inside a transaction
   *      (DmaContext.transact), so a terminated worker's use finishes before
   *      main completes the wait ---- */
  :: budget > 0 && alive[w] && pinned ->
       budget--;
       assert(!poisoned[pinPhys]);
       assert(!poisoned[pinPhys])

  /* ---- the holder releases it (it must, once its callback ran) ---- */
  :: atomic {
       alive[w] && pinned ->
       pinned = false; pinNotified = false; pinPhys = 0; pinGen = 0;
       CATCH_UP
     }

  /* ---- the worker hangs (a device model stuck in a loop, or injectFault
   *      stall): it does nothing more until main terminates it ---- */
  :: budget > 0 && alive[w] ->
       budget = 0;
end_stalled:
       !alive[w];
       break

  :: !alive[w] -> break
  /* ---- out of actions: an idle worker still takes messages (above) until the guest is done ---- */
  :: alive[w] && budget == 0 && !pinned && guestDone && empty(inval[w]) ->
       /* no lost invalidation: every generation was seen and acknowledged */
       assert(seen == reqGen[w] && ackGen[w] == reqGen[w]);
       break
  od;
  terminated[w] = true
}

init {
  byte i;
  atomic {
    i = 0;
    do
    :: i < W -> alive[i] = true; i++
    :: else -> break
    od;
    run MissServer();
    run CommandProcessor();
    i = 0;
    do
    :: i < W -> run Worker(i); i++
    :: else -> break
    od;
    run Guest()
  }
}

/* Every COMPLETION_WAIT eventually completes (checked with weak fairness). */
ltl completes { [] ((cwIssued > cwDone) -> <> (cwIssued == cwDone)) }
