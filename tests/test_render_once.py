"""One template rendering per example gives the same ids and spans as one rendering per follow-up."""

import pytest

from flr.kernel.chat import PLAIN_CHAT_TEMPLATE, ChatRenderer

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
QWEN25 = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{%- for message in messages %}{%- if (message.role == 'user') or (message.role == 'system' and not "
    "loop.first) or (message.role == 'assistant') %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
    "'<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
TEMPLATES = {"smollm2": None, "llama3": LLAMA3, "qwen2.5": QWEN25, "mistral": MISTRAL, "gemma": GEMMA}
FOLLOWUPS = ["Got it, thanks!", "That's wrong.", "Ça ne répond pas à ma question 🙁", "Why?"]
CONVERSATIONS = [
    ("What is 2+2?", "It is 4."),
    (
        [
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "Écris un haïku sur la mer."},
        ],
        "Vagues sur le sable —\nla mer respire lentement,\nle ciel se souvient.",
    ),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}], "Blue."),
    ("word " * 120, "A long prompt, cut from the left. " * 3),
]


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_render_once_equals_render_per_followup(tokenizer, name):
    template = TEMPLATES[name]
    saved = tokenizer.chat_template
    try:
        if template is not None:
            tokenizer.chat_template = template
        fast = ChatRenderer(tokenizer, max_length=160)
        slow = ChatRenderer(tokenizer, max_length=160, fast_render=False)
        for prompt, response in CONVERSATIONS:
            if name in ("mistral", "gemma") and isinstance(prompt, list) and prompt[0]["role"] == "system":
                continue  # these templates refuse system messages
            a = fast.followup_item(prompt, response, FOLLOWUPS)
            b = slow.followup_item(prompt, response, FOLLOWUPS)
            assert (a.prefix, a.continuations, a.spans, a.truncated) == (
                b.prefix,
                b.continuations,
                b.spans,
                b.truncated,
            )
    finally:
        tokenizer.chat_template = saved


def test_plain_fallback_and_a_template_that_changes_the_text(tokenizer):
    saved = tokenizer.chat_template
    try:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
        a = ChatRenderer(tokenizer).followup_item("Hi", "Hello.", FOLLOWUPS)
        b = ChatRenderer(tokenizer, fast_render=False).followup_item("Hi", "Hello.", FOLLOWUPS)
        assert (a.prefix, a.continuations, a.spans) == (b.prefix, b.continuations, b.spans)
        # upper-cases the text: the placeholder check fails and every follow-up is rendered on its own
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE.replace("message['content']", "message['content'] | upper")
        renderer = ChatRenderer(tokenizer)
        assert renderer._render_followups([{"role": "user", "content": "hi"}], FOLLOWUPS) is None
    finally:
        tokenizer.chat_template = saved
