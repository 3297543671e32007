import { describe, expect, it } from "vitest";
import { linePath, linearScale, niceTicks } from "../src/lib/chart";

describe("chart arithmetic", () => {
  it("maps linearly, also inverted", () => {
    const y = linearScale(-1, 1, 200, 0);
    expect(y(-1)).toBe(200);
    expect(y(0)).toBe(100);
    expect(y(1)).toBe(0);
  });

  it("picks round ticks", () => {
    expect(niceTicks(-1, 1, 4)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(niceTicks(0, 100, 5)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(3, 3)).toEqual([3]);
  });

  it("draws a path", () => {
    expect(linePath([{ x: 0, y: 1 }, { x: 2.25, y: 3 }])).toBe("M0.0,1.0 L2.3,3.0");
  });
});
