"""The texts the family kit scores and each reranker family's input format (tests/family_kit.py).

The prompt strings are the models' documented input formats (sources: ../shared/RERANKERS.md,
sentence-transformers' tests, FlagEmbedding's and mxbai_rerank's code); the Jinja around them is
written here.
"""

from __future__ import annotations

import json

QUERY = "Vitamin D supplementation reduces the risk of hip fractures in older adults."
DOCUMENTS = [
    "Vitamin D and hip fractures.",
    "Calcium intake was not associated with bone density in this cohort.",
    "We conducted a randomized trial of daily vitamin D supplementation in 2,686 adults aged "
    "65 to 85 years. After five years, the risk of hip fracture was 22% lower in the treated "
    "group than in the placebo group.",
    "Protein misfolding is a hallmark of neurodegenerative disease. We show that the chaperone "
    "HSP70 binds oligomers of alpha-synuclein in neurons and prevents their aggregation in "
    "vitro.",
    "Background: Falls and fractures are a major cause of disability in older adults, and low "
    "serum 25-hydroxyvitamin D is common in this population. Methods: We performed a "
    "meta-analysis of twelve randomized controlled trials that compared oral vitamin D, with "
    "or without calcium, against placebo or no treatment in adults older than 65 years. The "
    "primary outcome was hip fracture; secondary outcomes were any non-vertebral fracture and "
    "falls. Results: A daily dose of 700 to 800 IU of vitamin D reduced the relative risk of "
    "hip fracture by 26% and of any non-vertebral fracture by 23%, whereas a dose of 400 IU "
    "had no effect. The benefit was larger in trials with higher adherence and in people "
    "living in institutions. Conclusions: Oral vitamin D at 700 to 800 IU per day appears to "
    "reduce the risk of hip and other non-vertebral fractures in ambulatory or "
    "institutionalized elderly persons.",
    "Gene expression profiling of breast tumors identified five molecular subtypes with "
    "distinct outcomes.",
    "Objective: To estimate the effect of exercise on cognitive decline. Design: Cluster "
    "randomized trial in primary care practices. Participants: 1,350 patients aged 70 years or "
    "older with mild cognitive impairment. Intervention: A supervised program of aerobic and "
    "resistance exercise, three sessions per week for two years, compared with usual care and "
    "health education. Main outcome measures: Change in a composite cognitive score, incident "
    "dementia, and quality of life. Results: The exercise group declined less than the control "
    "group, but the difference was small and not significant after adjustment for baseline "
    "scores, and rates of dementia were similar in both groups.",
    "Hip fracture risk was higher in women with low vitamin D levels, independent of age, "
    "weight and physical activity, in a prospective study of 9,704 community-dwelling women "
    "followed for 12 years.",
]
PAIRS = [(QUERY, document) for document in DOCUMENTS]
#: An instruction (Qwen3-Embedding's SciFact task) for per-call ``prompt=``/``instruction=`` tests.
INSTRUCTION = "Given a scientific claim, retrieve documents that support or refute the claim"
#: The checkpoints' ``max_length`` (their tokenizers' ``model_max_length``), BERT's aside (128).
MAX_LENGTH = 160

# -- prompt formats


def _role(role: str) -> str:
    """Jinja for the content of the first message with ``role`` (undefined when there is none)."""
    return f'messages | selectattr("role", "eq", "{role}") | map(attribute="content") | first'


QWEN3_DEFAULT_INSTRUCTION = (
    "Given a web search query, retrieve relevant passages that answer the query"
)
QWEN3_SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".'
)
#: What every Qwen3-Reranker input ends with: the fixed tail truncation must not cut.
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
#: Qwen3-Reranker's format in sentence-transformers' roles: the instruction is the system message
#: (the prompt), Qwen's default instruction without one; then the query and document. Like the
#: real file, the source ends with one more newline than the render (Jinja drops the last one).
QWEN3_RERANKER_TEMPLATE = (
    "<|im_start|>system\n" + QWEN3_SYSTEM + "<|im_end|>\n<|im_start|>user\n"
    "<Instruct>: {{ " + _role("system") + f' | default("{QWEN3_DEFAULT_INSTRUCTION}") }}}}\n'
    "<Query>: {{ " + _role("query") + " }}\n"
    "<Document>: {{ " + _role("document") + " }}" + QWEN3_SUFFIX + "\n"
)
ZERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
#: zerank-2's: the query is the system turn, the document the user turn; the assistant turn is
#: opened by ``add_generation_prompt``. A system message (a prompt) is not rendered.
ZERANK_TEMPLATE = (
    "{%- set query = " + _role("query") + " -%}"
    "{%- set document = " + _role("document") + " -%}"
    "{{- '<|im_start|>system\\n' + query + '<|im_end|>\\n' -}}"
    "{{- '<|im_start|>user\\n' + document + '<|im_end|>\\n' -}}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def chatml_template(default_system: str | None = None) -> str:
    """An ordinary ChatML chat template that renders system, user and assistant messages only.

    Like Qwen2.5's and Qwen3's own, it drops other roles (sentence-transformers' ``query`` and
    ``document``); with ``default_system`` (Qwen2.5's) it opens with that system turn when the
    messages have none.
    """
    head = ""
    if default_system is not None:
        head = (
            "{%- if not messages or messages[0].role != 'system' %}"
            "{{- '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}{%- endif %}"
        )
    return (
        head + "{%- for message in messages %}"
        "{%- if message.role in ['system', 'user', 'assistant'] %}"
        "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
        "{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )


MXBAI_TASK_PROMPT = (
    "You are a search relevance expert who evaluates how well documents match search queries. "
    "For each query-document pair, carefully analyze the semantic relationship between them, then "
    "provide your binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)
MXBAI_SUFFIX = "\n" + MXBAI_TASK_PROMPT + "<|im_end|>\n<|im_start|>assistant\n"
#: mxbai-rerank-v2's input (``mxbai_rerank.MxbaiRerankV2``) as a template; a system message (a
#: prompt) becomes its ``instruction: ...`` line.
MXBAI_V2_TEMPLATE = (
    "{{- " + json.dumps(f"<|im_start|>system\n{QWEN25_DEFAULT_SYSTEM}<|im_end|>\n") + " }}"
    "{{- '<|im_start|>user\\n' }}"
    "{%- set instruction = " + _role("system") + " -%}"
    "{%- if instruction is defined %}{{- 'instruction: ' + instruction + '\\n' }}{%- endif %}"
    "{{- 'query: ' + " + _role("query") + " + '\\ndocument: ' + " + _role("document") + " }}"
    "{{- " + json.dumps(MXBAI_SUFFIX) + " }}"
)
BGE_GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'."
)
#: bge-reranker-v2-gemma's input (FlagEmbedding's ``FlagLLMReranker``) as a template; a system
#: message (a prompt) replaces the task prompt, as FlagEmbedding's ``prompt=`` does.
BGE_GEMMA_TEMPLATE = (
    "{{- bos_token + 'A: ' + " + _role("query") + " + '\\nB: ' + " + _role("document") + " }}"
    "{{- '\\n' }}{{- " + _role("system") + " | default(" + json.dumps(BGE_GEMMA_PROMPT) + ") }}"
)
