"""Writes golden.json: chat templates rendered by Python's jinja2 configured
as transformers' apply_chat_template does (ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks, loopcontrols, its tojson and raise_exception).
chat_test.go checks that package chat renders the same text.

Run from the repository root:  python3 chat/testdata/gen_golden.py
(jinja2 only; no transformers needed). Made with jinja2 3.1.6."""
import json
import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError


def raise_exception(m):
    raise TemplateError(m)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class Generation(jinja2.ext.Extension):
    # transformers' AssistantTracker, reduced to rendering the body.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[jinja2.ext.loopcontrols, Generation])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception


def cfg(name):
    with open(f"testdata/tokenizers/{name}/tokenizer_config.json") as f:
        return json.load(f)


T = {}
with open("models/tiny-brown/tokenizer_config.json") as f:
    T["tiny-brown"] = json.load(f)["chat_template"]
T["chatml"] = ("{% for message in messages %}"
               "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
               "{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
for n in ["llama3", "qwen3", "mistral_nemo"]:
    T[n] = cfg(n)["chat_template"]
# Llama 2 chat's template (meta-llama/Llama-2-7b-chat-hf).
T["llama2"] = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
# Zephyr's: plain tags on their own lines, which need trim_blocks.
T["zephyr"] = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
# Gemma's.
T["gemma"] = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
# lstrip_blocks, {%+ (no lstrip), comments, loop controls.
T["whitespace"] = "{% for m in messages %}\n    {% if m.role == 'system' %}{% continue %}{% endif %}\n    {% if m.role == 'user' %}\n  U: {{ m.content }}\n    {% else %}\n  A: {{ m.content }}\n    {% endif %}\n{% endfor %}\n{# comment #}\n  {%+ if add_generation_prompt %}A:{% endif %}"
# tojson as transformers defines it, and {% generation %}.
T["tojson"] = "{% for m in messages %}{{ m | tojson }}|{{ m.content | tojson }}|{{ {'b': 1.5, 'a': [1, none, true]} | tojson }}\n{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% endif %}{% endfor %}{{ messages[0] | tojson(indent=2) }}"

C = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi there"},
     {"role": "assistant", "content": " Hello there! "}, {"role": "user", "content": "Bye"},
     {"role": "assistant", "content": "See you\n"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nmull\n</think>\n\nA1"},
     {"role": "user", "content": "Q2 \"quoted\" <b>&amp; ünï 🙂 \\ \t"}],
    [{"role": "user", "content": "x"}],
    [{"role": "assistant", "content": "first"}],
]
out = []
for name, t in T.items():
    tpl = env.from_string(t)
    for ci, c in enumerate(C):
        for agp in [False, True]:
            case = dict(name=name, conversation=ci, add_generation_prompt=agp, messages=c)
            try:
                case["want"] = tpl.render(messages=c, add_generation_prompt=agp,
                                          bos_token="<BOS>", eos_token="<EOS>")
            except TemplateError as e:
                case["error"] = str(e)
            out.append(case)
with open("chat/testdata/golden.json", "w") as f:
    json.dump({"templates": T, "cases": out}, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(len(out), "cases,", sum("error" in c for c in out), "errors")
