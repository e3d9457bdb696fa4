"""How far crossrank's scores are from sentence-transformers' on the same model and texts.

The adapters' switching claims (README, docs/haystack.md, docs/langchain.md,
docs/llama_index.md) rest on these figures: Haystack's ``SentenceTransformersSimilarityRanker``,
LangChain's ``HuggingFaceCrossEncoder`` and LlamaIndex's ``SentenceTransformerRerank`` all
score with sentence-transformers' ``CrossEncoder.predict`` (sigmoid for a one-logit model),
so comparing with it directly compares with each of them.

For each crossrank backend given (default: ``auto``, what a user gets, and ``torch``), on the
first-stage candidates of a BEIR dataset (BM25 top-K), it prints the largest and the mean
absolute score difference, and how many queries keep the same top 10 (as a set, and in the
same order) and the same first document.

Usage::

    python examples/compare_with_peer.py --model ../shared/models/crossrank-minilm-l6-scifact \\
        --data ../shared/data/scifact --candidates 20 --backend auto --backend torch
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="a BEIR dataset folder")
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--queries", type=int, default=None, help="the first N test queries")
    parser.add_argument("--backend", action="append", default=None)
    args = parser.parse_args()

    from sentence_transformers import CrossEncoder

    from crossrank import CrossEncoderScorer
    from crossrank.eval.data import load_beir
    from crossrank.eval.first_stage import BM25Retriever
    from crossrank.runtimes.cpu import cpu_summary

    data = load_beir(args.data, split="test")
    query_ids = sorted(data.qrels)[: args.queries]
    retriever = BM25Retriever(data.corpus)
    cases = []
    for qid in query_ids:
        hits = retriever.search(data.queries[qid], k=args.candidates)
        cases.append((data.queries[qid], [data.doc_text(d) for d, _ in hits]))

    peer = CrossEncoder(args.model, device="cpu")
    started = time.perf_counter()
    reference = [np.asarray(peer.predict([(q, t) for t in texts])) for q, texts in cases]
    print(f"cpu: {cpu_summary()}")
    print(
        f"{len(cases)} queries x {args.candidates} BM25 candidates; sentence-transformers "
        f"CrossEncoder.predict (sigmoid) in {time.perf_counter() - started:.0f} s"
    )
    for backend in args.backend or ["auto", "torch"]:
        scorer = CrossEncoderScorer(args.model, backend=backend, device="cpu")
        scorer.warm_up()
        started = time.perf_counter()
        got = [np.asarray(scorer.score(q, texts)) for q, texts in cases]
        seconds = time.perf_counter() - started
        diffs = np.concatenate([np.abs(g - r) for g, r in zip(got, reference, strict=True)])
        same_set = same_order = same_first = 0
        for g, r in zip(got, reference, strict=True):
            top_g = np.argsort(-g, kind="stable")[:10]
            top_r = np.argsort(-r, kind="stable")[:10]
            same_set += set(top_g.tolist()) == set(top_r.tolist())
            same_order += bool((top_g == top_r).all())
            same_first += int(top_g[0]) == int(top_r[0])
        n = len(cases)
        print(
            f"{backend} (ran as {scorer.active_backend}, {seconds:.0f} s): max |diff| "
            f"{diffs.max():.2g}, mean {diffs.mean():.2g}; same top-10 set {same_set}/{n}, "
            f"same top-10 order {same_order}/{n}, same first {same_first}/{n}"
        )


if __name__ == "__main__":
    main()
