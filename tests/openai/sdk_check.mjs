// The official openai npm package (pinned in package-lock.json) against the stack: run by
// tests/e2e/test_openai_sdk.py with BASE_URL (the stack's /v1), TAG (unique text), USER_ID and CHAT_ID
// (a chat of that user's), API_KEY (AUTH=token: a token or personal API key of ours; else anything),
// BAD_KEY=1 (also try a wrong key), REVOKED_KEY (also try that revoked key).  Prints one JSON object:
// what each step saw; the Python side asserts.
import OpenAI from "openai";

const base = process.env.BASE_URL;
const tag = process.env.TAG;
const client = new OpenAI({ baseURL: base, apiKey: process.env.API_KEY || "sk-anything", maxRetries: 0,
    timeout: 20000, defaultQuery: { user_id: process.env.USER_ID } });
const out = {};

async function caught(fn) {
    try {
        await fn();
        return { thrown: null };
    } catch (e) {
        return { thrown: e.constructor.name, status: e.status ?? null, code: e.code ?? null, type: e.type ?? null,
            param: e.param ?? null, message: e.message, rateLimit: e instanceof OpenAI.RateLimitError,
            notFound: e instanceof OpenAI.NotFoundError, badRequest: e instanceof OpenAI.BadRequestError,
            apiError: e instanceof OpenAI.APIError };
    }
}

const models = [];
for await (const m of client.models.list())
    models.push({ id: m.id, object: m.object, owned_by: m.owned_by });
out.models = models;

const plain = await client.chat.completions.create({ model: "fast", temperature: 0.3, max_tokens: 64,
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: `plain ${tag}` }] });
out.plain = { object: plain.object, content: plain.choices[0].message.content, role: plain.choices[0].message.role,
    finish: plain.choices[0].finish_reason, usage: plain.usage, id: plain.id };

const chunks = [];
const stream = await client.chat.completions.create({ model: "openai/gpt-oss-20b", stream: true,
    stream_options: { include_usage: true }, messages: [{ role: "user", content: `streamed ${tag}` }] });
for await (const chunk of stream)
    chunks.push(chunk);
out.stream = {
    count: chunks.length,
    objects: [...new Set(chunks.map((c) => c.object))],
    firstRole: chunks[0]?.choices[0]?.delta?.role ?? null,
    text: chunks.map((c) => c.choices[0]?.delta?.content ?? "").join(""),
    finishes: chunks.map((c) => c.choices[0]?.finish_reason ?? null).filter((f) => f !== null),
    usage: chunks[chunks.length - 1]?.usage ?? null,
    lastChoices: chunks[chunks.length - 1]?.choices.length,
};

// The helper the SDK has for streams: the final message, assembled.
const runner = client.chat.completions.stream({ model: "fast",
    messages: [{ role: "user", content: `helper ${tag}` }] });
const final = await runner.finalChatCompletion();
out.helper = { content: final.choices[0].message.content };

out.rateLimited = await caught(() => client.chat.completions.create({ model: "fast",
    messages: [{ role: "user", content: `limited ${tag} #fault=429 #retry_after=0` }] }));
out.rateLimitedStream = await caught(async () => {
    const s = await client.chat.completions.create({ model: "fast", stream: true,
        messages: [{ role: "user", content: `limited stream ${tag} #fault=429 #retry_after=0` }] });
    for await (const _ of s) { /* nothing arrives */ }
});
out.unknownModel = await caught(() => client.chat.completions.create({ model: "gpt-4",
    messages: [{ role: "user", content: "hi" }] }));
out.tools = await caught(() => client.chat.completions.create({ model: "fast",
    tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
    messages: [{ role: "user", content: "hi" }] }));
out.midStream = await caught(async () => {
    const s = await client.chat.completions.create({ model: "fast", stream: true,
        messages: [{ role: "user", content: `broken ${tag} #fault=error_event` }] });
    for await (const _ of s) { /* the error event throws */ }
});

const stored = await client.chat.completions.create({ model: "fast",
    messages: [{ role: "user", content: `stored ${tag}` }] }, { headers: { "X-Chat-Id": process.env.CHAT_ID } });
out.stored = { content: stored.choices[0].message.content };

if (process.env.BAD_KEY === "1") {
    const wrong = new OpenAI({ baseURL: base, apiKey: "sk-not-a-token", maxRetries: 0 });
    out.badKeyModels = await caught(async () => { for await (const _ of wrong.models.list()) { /* refused */ } });
    out.badKeyChat = await caught(() => wrong.chat.completions.create({ model: "fast",
        messages: [{ role: "user", content: "hi" }] }));
    for (const k of ["badKeyModels", "badKeyChat"])
        out[k].authentication = out[k].thrown === "AuthenticationError";
}

// REVOKED_KEY: a personal API key revoked before the run (tests/e2e/test_api_keys.py).
if (process.env.REVOKED_KEY) {
    const revoked = new OpenAI({ baseURL: base, apiKey: process.env.REVOKED_KEY, maxRetries: 0 });
    out.revokedKey = await caught(async () => { for await (const _ of revoked.models.list()) { /* refused */ } });
    out.revokedKey.authentication = out.revokedKey.thrown === "AuthenticationError";
}

console.log(JSON.stringify(out));
