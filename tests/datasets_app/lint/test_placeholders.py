"""Leftover placeholders: every common template syntax is found; code, JSON, maths, markdown and HTML are not."""

import pytest

from datasets_app.blueprints.specs import MCQSpec
from datasets_app.curation.services import example_create
from datasets_app.demo import seed_demo
from datasets_app.lint.placeholders import find_placeholders
from datasets_app.models import Example

LEFTOVERS = [
    # {x}
    ("Tell me about {topic}.", ["{topic}"]),
    ("Dear { customer_name },", ["{ customer_name }"]),
    ("Hi {user.first_name}, your order has shipped.", ["{user.first_name}"]),
    ("Please write to {your name} soon.", ["{your name}"]),
    ('The JSON says "{product}" where the product should be.', ["{product}"]),
    # {{ x }}
    ("Thanks for asking, {{name}}!", ["{{name}}"]),
    ("Written by {{ author }} on {{ date }}.", ["{{ author }}", "{{ date }}"]),
    ("Hello {{ user.name | title }}", ["{{ user.name | title }}"]),
    ("{{{signature_html}}}", ["{{{signature_html}}}"]),
    ("Dear {{.Name}},", ["{{.Name}}"]),
    ("{{x}}", ["{{x}}"]),
    # [NAME]
    ("Best regards,\n[NAME]", ["[NAME]"]),
    ("Sincerely, [Your Name]", ["[Your Name]"]),
    ("Call us at [phone number].", ["[phone number]"]),
    ("[Insert company name here] makes great pans.", ["[Insert company name here]"]),
    ("Use the key [API_KEY] in the header.", ["[API_KEY]"]),
    ("Order number: [XXX]", ["[XXX]"]),
    ("Ask [Recipient's Name] before [Date].", ["[Recipient's Name]", "[Date]"]),
    # <your name here>
    ("Signed, <your name here>", ["<your name here>"]),
    ("Dear <NAME>,", ["<NAME>"]),
    ("Send it with <YOUR_API_KEY>.", ["<YOUR_API_KEY>"]),
    ("Write to <insert email address>.", ["<insert email address>"]),
    # ${X}
    ("Hello ${NAME}, welcome aboard.", ["${NAME}"]),
    ("Pay ${amount} by ${DUE_DATE}.", ["${amount}", "${DUE_DATE}"]),
    ("Hi ${ user }", ["${ user }"]),
    # %(x)s
    ("Dear %(name)s, thank you for writing.", ["%(name)s"]),
    ("You owe %(amount).2f euros.", ["%(amount).2f"]),
    # <<X>>
    ("Welcome to <<COMPANY>>!", ["<<COMPANY>>"]),
    ("Hi <<first name>>, thanks.", ["<<first name>>"]),
    ("<<X>>", ["<<X>>"]),
    # Lorem ipsum, in any case
    ("Lorem ipsum dolor sit amet.", ["Lorem ipsum"]),
    ("The answer: lorem ipsum", ["lorem ipsum"]),
    ("LOREM  IPSUM", ["LOREM  IPSUM"]),
    # TODO, in capitals, as a word
    ("TODO: write the answer", ["TODO"]),
    ("The capital of France is Paris. TODO check this", ["TODO"]),
    ("[TODO]", ["TODO"]),
    ("Fill this in (TODO).", ["TODO"]),
    # several at once, and leftovers next to code are still found
    ("Hi {{name}},\nyour code is ${CODE}.\n\nTODO", ["{{name}}", "${CODE}", "TODO"]),
    ("```python\nprint('hi')\n```\nThanks, {{name}}", ["{{name}}"]),
    ("Run `ls` and then email [Your Name].", ["[Your Name]"]),
    ("It costs $5 and {price} in total.", ["{price}"]),
    ("Between $a$ and ${NAME}", ["${NAME}"]),
]

CLEAN = [
    # JSON
    '{"name": "Ada", "age": 36}',
    "{}",
    '[{"id": 1}, {"id": 2}]',
    'Return {"status": "ok", "items": []} on success.',
    '{\n  "user": {\n    "name": "Ada"\n  },\n  "tags": ["a", "b"]\n}',
    MCQSpec(output="json").render("Which gas do plants take in?", ["O2", "CO2", "N2", "Ar"], 1, "CO2."),
    # fenced code in several languages
    "```python\nname = 'Ada'\nprint(f\"Hello {name}\")\nprint('{} {}'.format(a, b))\n"
    "msg = '%(name)s' % {'name': name}\n# TODO: handle errors\n```",
    "```js\nconst greet = (name) => `Hello ${name}`;\nconst user = {name};\n```",
    '```bash\necho "${HOME}/bin"\nfor f in *.txt; do echo "$f"; done\n```',
    "```jinja\n<p>{{ user.name }}</p>\n{% for x in items %}{{ x }}{% endfor %}\n```",
    '~~~html\n<div class="card"><b>[NAME]</b> <<COMPANY>></div>\n~~~',
    "````markdown\n```\n{{ nested }}\n```\nLorem ipsum\n````",
    "```\n{{ no_language }}\n```",
    "Intro:\n\n  ```sql\n  SELECT '{topic}' FROM t;\n  ```\n",
    # inline code and code elements
    "Use `{{ name }}` in the template and `${HOME}` in the shell.",
    "Call ``print(f'{x}')`` to show it.",
    "Write <code>{{ name }}</code> or <pre>[YOUR NAME]</pre>.",
    # Python formatting outside code blocks
    'Python: f\'{name}\' and "{}".format(x) and "{greeting}, world".format(greeting=g).',
    'Old style: print("%(name)s is %(age)d" % person)',
    'C#: Console.WriteLine($"Hello {name}"); Rust: println!("{name} is {age}");',
    # LaTeX
    "$\\frac{a}{b}$",
    "The area is $\\pi r^{2}$.",
    "$$\\sum_{i=1}^{n} x_{i}$$",
    "In \\(\\mathbb{R}^{n}\\) and \\[ \\int_{0}^{1} f(x)\\,dx \\]",
    "\\begin{equation}\n  E = mc^{2} \\label{eq:energy}\n\\end{equation}",
    "Outside maths too: \\frac{numerator}{denominator}, \\textbf{bold}, x^{power} and a_{index}.",
    "\\begin{itemize}\n  \\item {first}\n\\end{itemize}",
    "The formula is ${n \\choose k}$.",
    # maths and set notation
    "The set {1, 2, 3} has three elements.",
    "Let S = {x | x > 0} and T = {x}.",
    "The interval [0, 1] is closed; [a, b) is half-open.",
    "The matrix [[1, 2], [3, 4]] is invertible.",
    "It costs $5 and $10 with tax.",
    # markdown
    "See [the docs](https://example.com/docs) and [Name](https://example.com/name).",
    "![Company logo](logo.png)",
    "As shown in [1] and [2, 3].",
    "A footnote[^1].\n\n[^1]: The note.",
    "- [x] done\n- [ ] not yet\n- [X] Done",
    "[Product page][1]\n\n[1]: https://example.com",
    "> [!NOTE]\n> Read this first.",
    "## Intro {#intro .lead}",
    "Reading arr[name] and data['name'] from the row.",
    "He said it was [sic] wrong [citation needed].",
    'She said "we [the team] agreed" and "[his company] paid".',
    # HTML
    "Line one<br>Line two<br/>",
    "<b>Bold</b> and <i>italic</i>",
    '<a href="https://example.com">a link</a>',
    "<TITLE>Old page</TITLE>",
    "Email <ada@example.com> or visit <https://example.com>.",
    # generics, comparisons, shifts, command usage
    "Use List<String> or Map<String, Integer>.",
    "If a < b and b > c then a < c.",
    "Run git clone <url> and then cd <directory>.",
    "Shift left with x << 2 and right with y >> 1.",
    # model tokens and logs
    "BERT adds [CLS] and [SEP]; Llama wraps turns in [INST] ... [/INST]; ChatML uses <|im_start|> and </s>.",
    "[ERROR] connection refused\n[INFO] retrying",
    # words that look like TODO or Lorem ipsum but are not leftovers
    "Build a todo app with React.",
    "Make a to do list for the week.",
    "Mark finished todos as done.",
    "Keep a TODO list on paper, or add a TODO comment to the code.",
    "TODOs pile up fast.",
    "My todo: buy eggs.",
    "Lorem is not a word; ipsum neither.",
    # the answers curation templates produce
    MCQSpec().render("Which gas do plants take in?", ["Oxygen", "Carbon dioxide", "Nitrogen", "Argon"], 1, "CO2."),
    "Question: Which number is prime?\nA) 4\nB) 6\nC) 7\nD) 9\nAnswer: C\nExplanation: 7 has no other divisors.",
    "(a) Paris\n(b) Rome\nAnswer: (a)",
    "I'm sorry, but I can't help with medical advice. Please talk to a doctor or pharmacist.",
    "I can't help with investment advice. A licensed financial adviser can help you with that.",
]


@pytest.mark.parametrize(("text", "expected"), LEFTOVERS, ids=lambda value: repr(value)[:40])
def test_a_leftover_placeholder_is_found(text, expected):
    assert [found.text for found in find_placeholders(text)] == expected


@pytest.mark.parametrize("text", CLEAN, ids=lambda value: repr(value)[:40])
def test_code_json_maths_markdown_and_html_are_not_placeholders(text):
    assert find_placeholders(text) == []


def test_the_line_of_each_placeholder_is_counted_in_the_original_text():
    text = "```\n{{ code }}\n```\nDear [NAME],\n\nthanks.\n%(sender)s"
    assert [(found.text, found.line) for found in find_placeholders(text)] == [("[NAME]", 4), ("%(sender)s", 7)]


@pytest.mark.django_db
def test_a_pair_reports_each_placeholder_with_its_field_and_line(dataset, annotator):
    example = example_create(
        dataset=dataset,
        user=annotator,
        system_prompt="You are {{assistant_name}}.",
        prompt="Write to [NAME] about {topic}.",
        response="Sure.\nRegards, ${SENDER}\n\nLorem ipsum",
    )
    problems = Example.objects.get(pk=example.pk).problems
    assert [(p["code"], p["field"], p["line"], p["message"]) for p in problems] == [
        ("placeholder", "system_prompt", 1, "leftover placeholder {{assistant_name}}"),
        ("placeholder", "prompt", 1, "leftover placeholder [NAME]"),
        ("placeholder", "prompt", 1, "leftover placeholder {topic}"),
        ("placeholder", "response", 2, "leftover placeholder ${SENDER}"),
        ("placeholder", "response", 4, "leftover placeholder Lorem ipsum"),
    ]


@pytest.mark.django_db
def test_the_demo_data_has_no_placeholders():
    seed_demo()
    examples = list(Example.objects.all())
    assert len(examples) > 60
    for example in examples:
        texts = [example.system_prompt, example.prompt, example.response, *(t["content"] for t in example.history)]
        assert [find_placeholders(text) for text in texts if find_placeholders(text)] == [], example.pk
    assert not [p for example in examples for p in example.problems if p["code"] == "placeholder"]
