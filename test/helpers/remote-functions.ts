/** Functions that tests send by module reference: engines import this module. */
export function triple(x: number): number {
  return 3 * x
}
