import { describe, expect, it } from "vitest";
import { en } from "../src/i18n/en";
import { zh } from "../src/i18n/zh";
import { detectLang, format } from "../src/i18n";

describe("dictionaries", () => {
  it("have the same keys", () => {
    expect(Object.keys(zh).sort()).toEqual(Object.keys(en).sort());
  });

  it("have no empty strings and the same placeholders", () => {
    for (const key of Object.keys(en) as Array<keyof typeof en>) {
      expect(en[key].trim(), key).not.toBe("");
      expect(zh[key].trim(), key).not.toBe("");
      const names = (s: string): string[] => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1] ?? "").sort();
      expect(names(zh[key]), key).toEqual(names(en[key]));
    }
  });

  it("keep the strings the e2e tests look for", () => {
    expect(en["login.key"]).toBe("API key");
    expect(zh["login.key"]).toBe("API 密钥");
    expect(en["lang.label"]).toBe("Language");
    expect(zh["lang.label"]).toBe("语言");
    expect(en["chat.call"]).toBe("Start a voice call");
    expect(zh["chat.call"]).toBe("开始语音通话");
    expect(en["chat.room"]).toBe("Join a voice room");
    expect(en["room.status.live"]).toBe("In the room");
    expect(en["room.joined"]).toBe("{name} joined");
    expect(en["room.left"]).toBe("{name} left");
  });
});

describe("language", () => {
  it("follows the stored choice, else the browser", () => {
    expect(detectLang("zh-CN", ["en-US"])).toBe("zh-CN");
    expect(detectLang(null, ["zh-TW", "en"])).toBe("zh-CN");
    expect(detectLang(null, ["fr-FR", "en-GB"])).toBe("en");
    expect(detectLang(null, ["fr-FR"])).toBe("en");
    expect(detectLang("xx", ["zh"])).toBe("zh-CN");
  });

  it("fills placeholders", () => {
    expect(format("Hi {name}, {n} new", { name: "Ada", n: 3 })).toBe("Hi Ada, 3 new");
    expect(format("{missing}", {})).toBe("{missing}");
  });
});
